"""Fetch UTC days of hourly archives into a folder laid out as the archive is
(``{yyyy}/{MM}/{dd}/{HH}.zip``), within the download limit, verified, resumable.

- Pacing: a 429 carries ``Retry-After``; the client sleeps that long and tries again, never in
  a busy loop. A link that expired while it waited (401 ``link_expired``) is replaced by asking
  for the day again, which costs no download.
- Resume: ``manifest.jsonl`` in the folder lists every verified file; a listed file whose bytes
  still hash to the SHA-256 the API gives is never fetched again (and costs no download). A
  file at its final name that the manifest does not list yet (the client was killed between
  the rename and the manifest line) is verified and adopted, not fetched again.
- Atomic: bytes go to ``HH.zip.part``, are fsynced and verified, then renamed; a partial file
  never has the final name, and a manifest line is written only for a renamed file.
- Verified: size and SHA-256 against the links answer, then the ZIP opened, every entry's CRC
  checked and its ``metadata.json`` checked to name the tenant, day and hour asked for. A file
  that fails is moved to ``rejected/`` with the reason next to it, never deleted.
- Superseded: an hour archived again on the server (late recordings) has a new SHA-256; the
  verified old file is moved to ``superseded/`` (kept, as evidence of what was fetched) and the
  new one fetched.
- One at a time: a lock file keeps two clients from fetching into one folder at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import httpx

from recordings_client.api import ApiError, ArchivesApi, DayLinks, HourLink

MANIFEST = "manifest.jsonl"
LOCK = ".recordings-client.lock"
REJECTED = "rejected"
SUPERSEDED = "superseded"
DEFAULT_RETRY_AFTER = 30.0
MAX_ATTEMPTS = 50  # per hour: 429s and expired links, each answered by waiting or a new link
STREAM_ATTEMPTS = 3  # a storage URL dropped mid-body is read again before spending a download
CHUNK = 1 << 20
LINK_REFRESH_CODES = frozenset({"link_expired"})

# Outcomes of an hour. The CLI's exit code follows the gravest (see cli.py).
FETCHED, ALREADY, SKIPPED = "fetched", "already_verified", "skipped_empty"
PENDING, FAILED, EXPIRED, REJECTED_OUTCOME = "pending", "failed", "expired", "rejected"
STATUS_DETAILS = {
    PENDING: "not archived yet: fetch again later",
    FAILED: "the last archive run for this hour failed and the host's operators are alerted: "
    "fetch again later",
    EXPIRED: "outside the tenant's retention: it can no longer be downloaded",
}


@dataclass(frozen=True)
class HourOutcome:
    """What happened to one hour, as the progress display and the report give it."""

    utc_day: str
    hour: int
    outcome: str
    path: str | None = None  # relative to the folder
    sha256: str | None = None
    size_bytes: int | None = None
    recordings: int | None = None
    detail: str = ""


@dataclass
class FetchReport:
    outcomes: list[HourOutcome] = field(default_factory=list)
    downloads: int = 0  # downloads spent on the server (the tenant's limit counts these)
    waited_seconds: float = 0.0  # asleep on Retry-After
    links_refreshed: int = 0  # expired links replaced by asking for the day again
    bytes_fetched: int = 0
    # Set when the limit asked for a wait beyond max_wait: the hours still to download are
    # reported pending, with no further request, for a later run to resume.
    stopped_waiting: str | None = None

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)


class VerificationError(Exception):
    """A file is not the archive asked for; the message says why."""


class FolderBusy(Exception):
    """Another client is fetching into the same folder."""


def archive_path(folder: Path, utc_day: str, hour: int) -> Path:
    year, month, day = utc_day.split("-")
    return folder / year / month / day / f"{hour:02d}.zip"


def file_digest(path: Path) -> tuple[int, str]:
    """The file's size and SHA-256."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Manifest:
    """What was fetched and verified, one JSON line per file, appended and fsynced.

    A line cut short by a kill is ignored on reading: the file it was about is verified again
    and adopted if it is whole.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / MANIFEST
        self.entries: dict[str, dict[str, object]] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and "file" in entry:
                    self.entries[str(entry["file"])] = entry

    def verified(self, relative: str, sha256: str | None) -> bool:
        """The file is listed with this SHA-256 and its bytes still hash to it."""
        entry = self.entries.get(relative)
        if entry is None or entry.get("sha256") != sha256:
            return False
        path = self.path.parent / relative
        if not path.is_file():
            return False
        return file_digest(path) == (entry.get("sizeBytes"), entry.get("sha256"))

    def add(self, entry: dict[str, object]) -> None:
        self.entries[str(entry["file"])] = entry
        with self.path.open("a") as file:
            file.write(json.dumps(entry, sort_keys=True) + "\n")
            file.flush()
            os.fsync(file.fileno())


@dataclass(frozen=True)
class VerifiedArchive:
    """What verifying a file established: its size and SHA-256 (read once, and written to the
    manifest as read) and the count of recordings its metadata lists."""

    size_bytes: int
    sha256: str
    recordings: int


def verify_archive(path: Path, link: HourLink, tenant_id: str, utc_day: str) -> VerifiedArchive:
    """Raise VerificationError saying why `path` is not the archive asked for; else say what
    was verified."""
    size, digest = file_digest(path)
    if link.size_bytes is not None and size != link.size_bytes:
        raise VerificationError(f"{size} bytes where the links answer said {link.size_bytes}")
    if link.sha256 is not None and digest != link.sha256:
        raise VerificationError(f"SHA-256 {digest} where the links answer said {link.sha256}")
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
            metadata = json.loads(archive.read("metadata.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        raise VerificationError(f"not a readable archive with a metadata.json: {error}") from None
    if broken is not None:
        raise VerificationError(f"its entry {broken!r} fails its CRC check")
    if not isinstance(metadata, dict):
        raise VerificationError("its metadata.json is not a JSON object")
    named = (metadata.get("tenantId"), metadata.get("utcDay"), metadata.get("hour"))
    if named != (tenant_id, utc_day, link.hour):
        raise VerificationError(
            f"its metadata.json names tenant {named[0]!r}, day {named[1]!r}, hour {named[2]!r}; "
            f"asked for tenant {tenant_id!r}, day {utc_day!r}, hour {link.hour}"
        )
    counts = metadata.get("counts")
    recordings = int(counts.get("recordings", 0)) if isinstance(counts, dict) else 0
    return VerifiedArchive(size, digest, recordings)


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold the folder's lock file for the fetch; refuse if another client holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / LOCK).open("a+") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusy(
                f"another recordings-client is fetching into {folder} (it holds {LOCK}); "
                "wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


@dataclass
class _DayFetch:
    """Fetching one day: the day's links (replaced when one expires) and what it needs."""

    api: ArchivesApi
    links: DayLinks
    folder: Path
    manifest: Manifest
    report: FetchReport
    skip_empty: bool
    sleep: Callable[[float], None]
    on_bytes: Callable[[int], None] | None
    max_wait: float | None = None

    def hour(self, index: int) -> HourOutcome:
        link = self.links.hours[index]
        day = self.links.utc_day
        if link.status != "available":
            return HourOutcome(
                day, link.hour, link.status, detail=STATUS_DETAILS.get(link.status, "")
            )
        final = archive_path(self.folder, day, link.hour)
        relative = final.relative_to(self.folder).as_posix()
        if self.manifest.verified(relative, link.sha256):
            return HourOutcome(
                day,
                link.hour,
                ALREADY,
                relative,
                link.sha256,
                link.size_bytes,
                link.recording_count,
            )
        if final.is_file():
            adopted = self._adopt_or_supersede(final, relative, link)
            if adopted is not None:
                return adopted
        if self.skip_empty and link.empty:
            return HourOutcome(
                day, link.hour, SKIPPED, detail="no recordings in this hour (not downloaded)"
            )
        final.parent.mkdir(parents=True, exist_ok=True)
        part = final.with_name(final.name + ".part")
        gave_up = self._download(index, part)
        if gave_up is not None:
            return gave_up
        link = self.links.hours[index]  # the links may have been refreshed
        try:
            verified = verify_archive(part, link, self.links.tenant_id, day)
        except VerificationError as error:
            return self._reject(part, link, str(error))
        os.replace(part, final)
        _fsync_folder(final.parent)
        return self._record(relative, link, verified)

    def _adopt_or_supersede(self, final: Path, relative: str, link: HourLink) -> HourOutcome | None:
        """A file already at the final name that the manifest does not vouch for: adopted if it
        is the archive the links answer describes, else moved aside before the fetch."""
        try:
            verified = verify_archive(final, link, self.links.tenant_id, self.links.utc_day)
        except VerificationError as error:
            listed = self.manifest.entries.get(relative)
            if listed is not None and listed.get("sha256") != link.sha256:
                folder = SUPERSEDED
                why = (
                    f"superseded: the server archived this hour again (fetched "
                    f"{listed.get('sha256')} at {listed.get('verifiedAt')}, now {link.sha256})"
                )
            else:
                folder = REJECTED
                why = f"found at the final name but it does not verify: {error}"
            _set_aside(final, self.folder / folder, self.links.utc_day, link.hour, why)
            return None
        return self._record(relative, link, verified, outcome=ALREADY)

    def _download(self, index: int, part: Path) -> HourOutcome | None:
        """Download the hour into `part`; None when done, else the hour's outcome."""
        day = self.links.utc_day
        for _attempt in range(MAX_ATTEMPTS):
            link = self.links.hours[index]
            if self.report.stopped_waiting:
                return HourOutcome(day, link.hour, PENDING, detail=self.report.stopped_waiting)
            try:
                storage_url = self.api.storage_url(link.url or "")
            except ApiError as error:
                if error.status == 429:
                    wait = (
                        error.retry_after if error.retry_after is not None else DEFAULT_RETRY_AFTER
                    )
                    if (
                        self.max_wait is not None
                        and self.report.waited_seconds + wait > self.max_wait
                    ):
                        self.report.stopped_waiting = (
                            f"the download limit asks to wait {wait:.0f} s, beyond the "
                            f"{self.max_wait:.0f} s allowed (max_wait): run again later"
                        )
                        continue
                    self.report.waited_seconds += wait
                    self.sleep(wait)
                    continue
                if error.code in LINK_REFRESH_CODES or error.status == 410:
                    # The link expired while the client waited, or the archive is gone: the
                    # day's fresh links say which (a new link, or the hour `expired`).
                    self.links = self.api.day_links(day)
                    self.report.links_refreshed += 1
                    fresh = self.links.hours[index]
                    if fresh.status != "available":
                        return HourOutcome(day, fresh.hour, fresh.status, detail=error.detail)
                    continue
                raise
            self.report.downloads += 1
            if self._stream(storage_url, part):
                return None
        return HourOutcome(
            day,
            self.links.hours[index].hour,
            PENDING,
            detail=f"gave up after {MAX_ATTEMPTS} attempts: fetch again later",
        )

    def _stream(self, storage_url: str, part: Path) -> bool:
        """Write the storage URL's body to `part`; False if the network kept failing."""
        for _attempt in range(STREAM_ATTEMPTS):
            try:
                with self.api.storage_stream(storage_url) as response, part.open("wb") as out:
                    _copy(response, out, self.on_bytes, self.report)
                return True
            except httpx.TransportError:
                continue
        return False

    def _reject(self, part: Path, link: HourLink, why: str) -> HourOutcome:
        kept = _set_aside(part, self.folder / REJECTED, self.links.utc_day, link.hour, why)
        return HourOutcome(
            self.links.utc_day,
            link.hour,
            REJECTED_OUTCOME,
            kept.relative_to(self.folder).as_posix(),
            detail=why,
        )

    def _record(
        self, relative: str, link: HourLink, verified: VerifiedArchive, outcome: str = FETCHED
    ) -> HourOutcome:
        self.manifest.add(
            {
                "file": relative,
                "sha256": verified.sha256,
                "sizeBytes": verified.size_bytes,
                "recordings": verified.recordings,
                "tenantId": self.links.tenant_id,
                "utcDay": self.links.utc_day,
                "hour": link.hour,
                "verifiedAt": _now(),
            }
        )
        return HourOutcome(
            self.links.utc_day,
            link.hour,
            outcome,
            relative,
            verified.sha256,
            verified.size_bytes,
            verified.recordings,
        )


def _copy(
    response: httpx.Response,
    out: IO[bytes],
    on_bytes: Callable[[int], None] | None,
    report: FetchReport,
) -> None:
    for chunk in response.iter_bytes(CHUNK):
        out.write(chunk)
        report.bytes_fetched += len(chunk)
        if on_bytes:
            on_bytes(len(chunk))
    out.flush()
    os.fsync(out.fileno())


def _set_aside(path: Path, folder: Path, utc_day: str, hour: int, why: str) -> Path:
    """Move a file aside under `folder` with the reason next to it; never overwrite one."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{utc_day}-{hour:02d}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    kept = folder / f"{stem}.zip"
    suffix = 1
    while kept.exists():
        suffix += 1
        kept = folder / f"{stem}-{suffix}.zip"
    os.replace(path, kept)
    kept.with_suffix(".why.txt").write_text(f"{why}\n")
    return kept


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fetch_days(
    api: ArchivesApi,
    days: Iterable[str],
    folder: Path,
    *,
    skip_empty: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    on_hour: Callable[[HourOutcome], None] | None = None,
    on_bytes: Callable[[int], None] | None = None,
    max_wait: float | None = None,
) -> FetchReport:
    """Fetch every hour of the days into `folder`; see the module's docstring. An ApiError
    about the request itself (token, permission, day) is raised; what happens to each hour is
    in the report. `max_wait` bounds the seconds spent asleep on the download limit: past it,
    the hours still to download are reported pending (a later run resumes)."""
    report = FetchReport()
    with folder_lock(folder):
        manifest = Manifest(folder)
        for utc_day in days:
            links = api.day_links(utc_day)
            fetch = _DayFetch(
                api, links, folder, manifest, report, skip_empty, sleep, on_bytes, max_wait
            )
            for index in range(len(fetch.links.hours)):
                outcome = fetch.hour(index)
                report.outcomes.append(outcome)
                if on_hour:
                    on_hour(outcome)
    return report
