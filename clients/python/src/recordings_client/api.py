"""The download API as the client sees it: a day's links, and one archive's bytes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

DAY_PATH = "/api/v1/daily-conversation-audio-recordings"


class ApiError(Exception):
    """The API refused a request: its status, its stable error code and what it said."""

    def __init__(self, status: int, code: str, detail: str, retry_after: float | None = None):
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after = retry_after


@dataclass(frozen=True)
class HourLink:
    hour: int
    hour_start: str
    status: str  # available | pending | failed | expired
    url: str | None = None
    expires_at: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    recording_count: int | None = None
    conversation_count: int | None = None
    failed_recording_count: int | None = None

    @property
    def empty(self) -> bool:
        """Archived with nothing in it: no recording, none failed."""
        return (
            self.status == "available"
            and not self.recording_count
            and not (self.failed_recording_count)
        )


@dataclass(frozen=True)
class DayLinks:
    tenant_id: str
    utc_day: str
    hours: tuple[HourLink, ...]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _error(response: httpx.Response) -> ApiError:
    try:
        body: Any = response.json()
    except ValueError:
        body = {}
    code = str(body.get("code") or f"http_{response.status_code}") if isinstance(body, dict) else ""
    detail = str(body.get("detail") or response.reason_phrase) if isinstance(body, dict) else ""
    return ApiError(response.status_code, code, detail, _retry_after(response))


class ArchivesApi:
    """One tenant's view of the API, authenticated by a bearer token."""

    def __init__(
        self, base_url: str, token: str, *, client: httpx.Client | None = None, timeout: float = 60
    ) -> None:
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False)
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}

    def close(self) -> None:
        self._client.close()

    def day_links(self, utc_day: str) -> DayLinks:
        response = self._client.get(
            f"{self._base}{DAY_PATH}", params={"utcDay": utc_day}, headers=self._headers
        )
        if response.status_code != 200:
            raise _error(response)
        body = response.json()
        hours = tuple(
            HourLink(
                hour=h["hour"],
                hour_start=h["hourStart"],
                status=h["status"],
                url=h.get("url"),
                expires_at=h.get("expiresAt"),
                size_bytes=h.get("sizeBytes"),
                sha256=h.get("sha256"),
                recording_count=h.get("recordingCount"),
                conversation_count=h.get("conversationCount"),
                failed_recording_count=h.get("failedRecordingCount"),
            )
            for h in body["hours"]
        )
        return DayLinks(body["tenantId"], body["utcDay"], hours)

    @contextmanager
    def archive(self, url: str) -> Iterator[httpx.Response]:
        """The archive behind a signed link: the link (which counts as a download) redirects
        to a short-lived S3 URL, whose body is streamed. The link needs no bearer token."""
        link = self._client.get(url)
        if link.status_code != 307:
            raise _error(link)
        location = link.headers["Location"]
        with self._client.stream("GET", location) as response:
            if response.status_code != 200:
                response.read()
                raise ApiError(response.status_code, "storage_error", response.text[:300])
            yield response
