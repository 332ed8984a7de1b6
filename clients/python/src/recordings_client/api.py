"""The download API as the client sees it: a day's links, and one archive's bytes.

Nothing here retries on its own except for the network: a connection that fails or times out is
tried again a few times with a growing pause (the server may be restarting), then the error is
raised. What the API answers (429, an expired link, a refusal) is raised as ``ApiError`` with
the API's stable code, for the caller to act on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

DAY_PATH = "/api/v1/daily-conversation-audio-recordings"
NETWORK_ATTEMPTS = 5
NETWORK_BACKOFF_SECONDS = (1.0, 2.0, 5.0, 15.0)
USER_AGENT = "recordings-client/0.1"

T = TypeVar("T")


class ApiError(Exception):
    """The API refused a request: its status, its stable error code and what it said."""

    def __init__(
        self, status: int, code: str, detail: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after = retry_after


class NetworkError(Exception):
    """The API or the storage could not be reached after several attempts."""


@dataclass(frozen=True)
class HourLink:
    """One hour of a day as the links answer gives it."""

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
        """Archived with nothing in it: no recording, and none that failed."""
        return (
            self.status == "available"
            and not self.recording_count
            and not self.failed_recording_count
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
        body = None
    if not isinstance(body, dict):
        body = {}
    code = str(body.get("code") or f"http_{response.status_code}")
    detail = str(body.get("detail") or response.reason_phrase)
    return ApiError(response.status_code, code, detail, _retry_after(response))


def _hour(entry: dict[str, Any]) -> HourLink:
    return HourLink(
        hour=int(entry["hour"]),
        hour_start=str(entry["hourStart"]),
        status=str(entry["status"]),
        url=entry.get("url"),
        expires_at=entry.get("expiresAt"),
        size_bytes=entry.get("sizeBytes"),
        sha256=entry.get("sha256"),
        recording_count=entry.get("recordingCount"),
        conversation_count=entry.get("conversationCount"),
        failed_recording_count=entry.get("failedRecordingCount"),
    )


class ArchivesApi:
    """One tenant's view of the API, authenticated by a bearer token.

    The token goes with every request to the API, download links included: a link needs no
    token, but sending it lets the server refuse a link of another tenant (``link_foreign_
    tenant``) instead of serving it. It never goes to the storage the link redirects to.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        client: httpx.Client | None = None,
        timeout: float = 60,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client or httpx.Client(
            timeout=timeout, follow_redirects=False, headers={"User-Agent": USER_AGENT}
        )
        self._base = base_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {token}"}
        self._sleep = sleep

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ArchivesApi:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _with_network_retries(self, call: Callable[[], T]) -> T:
        for attempt in range(NETWORK_ATTEMPTS):
            try:
                return call()
            except httpx.TransportError as error:
                if attempt == NETWORK_ATTEMPTS - 1:
                    raise NetworkError(
                        f"{type(error).__name__}: {error}; tried {NETWORK_ATTEMPTS} times"
                    ) from error
                self._sleep(NETWORK_BACKOFF_SECONDS[min(attempt, len(NETWORK_BACKOFF_SECONDS) - 1)])
        raise AssertionError("unreachable")

    def day_links(self, utc_day: str) -> DayLinks:
        """The day's 24 hours (``GET /api/v1/daily-conversation-audio-recordings``). A links
        request is audited but costs no download."""
        response = self._with_network_retries(
            lambda: self._client.get(
                f"{self._base}{DAY_PATH}", params={"utcDay": utc_day}, headers=self._auth
            )
        )
        if response.status_code != 200:
            raise _error(response)
        body = response.json()
        return DayLinks(
            str(body["tenantId"]), str(body["utcDay"]), tuple(_hour(h) for h in body["hours"])
        )

    def storage_url(self, link_url: str) -> str:
        """Spend one download: the link answers 307 to a short-lived storage URL. A 429 (the
        tenant's limit), an expired link (401 ``link_expired``) or an archive gone (410) is an
        ApiError."""
        response = self._with_network_retries(
            lambda: self._client.get(link_url, headers=self._auth)
        )
        if response.status_code != 307:
            raise _error(response)
        return response.headers["Location"]

    @contextmanager
    def storage_stream(self, storage_url: str) -> Iterator[httpx.Response]:
        """The archive's bytes at a storage URL, streamed (no bearer token is sent there)."""
        with self._client.stream("GET", storage_url) as response:
            if response.status_code != 200:
                response.read()
                raise ApiError(
                    response.status_code, "storage_error", response.text[:300] or "no body"
                )
            yield response
