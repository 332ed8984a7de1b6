"""Fetch UTC days of hourly archives into a folder laid out as the archive is
(``{yyyy}/{MM}/{dd}/{HH}.zip``), within the download limit, verified, resumable.

- Pacing: a 429 carries ``Retry-After``; the client sleeps that long and tries again, never in
  a busy loop. A link that expired while it waited (410) is replaced by asking for the day again.
- Resume: ``manifest.jsonl`` in the folder lists every verified file; a listed file whose bytes
  still hash to its SHA-256 is never fetched again (and costs no download).
- Atomic: bytes go to ``HH.zip.part``, are verified, then renamed; a partial file never has the
  final name.
- Verified: size and SHA-256 against the links answer, then the ZIP opened and its
  ``metadata.json`` checked to name the tenant, day and hour asked for. A file that fails is
  moved to ``rejected/`` with the reason, never deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from recordings_client.api import ApiError, ArchivesApi, DayLinks, HourLink

MANIFEST = "manifest.jsonl"
REJECTED = "rejected"
DEFAULT_RETRY_AFTER = 30.0
MAX_ATTEMPTS = 50  # per hour: 429s and expired links, each answered by waiting or a new link
CHUNK = 1 << 20

# Outcomes, and the order of their gravity for the exit code (see cli.py).
FETCHED, ALREADY, SKIPPED = "fetched", "already_verified", "skipped_empty"
PENDING, FAILED, EXPIRED, REJECTED_OUTCOME = "pending", "failed", "expired", "rejected"


@dataclass(frozen=True)
class HourOutcome:
    utc_day: str
    hour: int
    outcome: str
    path: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    recordings: int | None = None
    detail: str = ""


@dataclass
class FetchReport:
    outcomes: list[HourOutcome] = field(default_factory=list)
    downloads: int = 0
    waited_seconds: float = 0.0

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)


class VerificationError(Exception):
    pass


def archive_path(folder: Path, utc_day: str, hour: int) -> Path:
    year, month, day = utc_day.split("-")
    return folder / year / month / day / f"{hour:02d}.zip"


def _sha256_of(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class Manifest:
    """What was fetched and verified, one JSON line per file, appended and fsynced."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / MANIFEST
        self.entries: dict[str, dict[str, object]] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    entry = json.loads(line)
                    self.entries[str(entry["file"])] = entry

    def verified(self, relative: str, sha256: str | None) -> bool:
        entry = self.entries.get(relative)
        if entry is None or (sha256 is not None and entry.get("sha256") != sha256):
            return False
        path = self.path.parent / relative
        if not path.exists():
            return False
        size, digest = _sha256_of(path)
        return size == entry.get("sizeBytes") and digest == entry.get("sha256")

    def add(self, entry: dict[str, object]) -> None:
        self.entries[str(entry["file"])] = entry
        with self.path.open("a") as file:
            file.write(json.dumps(entry, sort_keys=True) + "\n")
            file.flush()
            os.fsync(file.fileno())


def verify_archive(path: Path, link: HourLink, tenant_id: str, utc_day: str) -> int:
    """Raise VerificationError saying why `path` is not the archive asked for; else return the
    count of recordings its metadata lists."""
    size, digest = _sha256_of(path)
    if link.size_bytes is not None and size != link.size_bytes:
        raise VerificationError(f"{size} bytes where the links answer said {link.size_bytes}")
    if link.sha256 is not None and digest != link.sha256:
        raise VerificationError(f"SHA-256 {digest} where the links answer said {link.sha256}")
    try:
        with zipfile.ZipFile(path) as archive:
            metadata = json.loads(archive.read("metadata.json"))
            broken = archive.testzip()
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise VerificationError(f"not a readable archive with metadata.json: {error}") from error
    if broken is not None:
        raise VerificationError(f"entry {broken!r} fails its CRC")
    named = (metadata.get("tenantId"), metadata.get("utcDay"), metadata.get("hour"))
    if named != (tenant_id, utc_day, link.hour):
        raise VerificationError(
            f"its metadata.json names tenant {named[0]!r}, day {named[1]!r}, hour {named[2]!r}; "
            f"asked for {tenant_id!r}, {utc_day!r}, {link.hour}"
        )
    return int(metadata.get("counts", {}).get("recordings", 0))


def fetch_days(
    api: ArchivesApi,
    days: Iterable[str],
    folder: Path,
    *,
    skip_empty: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    on_progress: Callable[[HourOutcome], None] | None = None,
) -> FetchReport:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(folder)
    report = FetchReport()
    for utc_day in days:
        links = api.day_links(utc_day)
        for index in range(len(links.hours)):
            # A link that expired while the client waited is replaced by the day's fresh links,
            # which the next hours use too.
            outcome, links = _fetch_hour(
                api, links, index, folder, manifest, report, skip_empty, sleep
            )
            report.outcomes.append(outcome)
            if on_progress:
                on_progress(outcome)
    return report


def _fetch_hour(
    api: ArchivesApi,
    links: DayLinks,
    index: int,
    folder: Path,
    manifest: Manifest,
    report: FetchReport,
    skip_empty: bool,
    sleep: Callable[[float], None],
) -> tuple[HourOutcome, DayLinks]:
    link = links.hours[index]
    day = links.utc_day
    if link.status != "available":
        detail = {
            PENDING: "not archived yet: fetch again later",
            FAILED: "the last run for this hour failed; operators are alerted: fetch again later",
            EXPIRED: "outside the tenant's retention: no longer downloadable",
        }.get(link.status, link.status)
        outcome = HourOutcome(day, link.hour, link.status, detail=detail)
        return outcome, links
    final = archive_path(folder, day, link.hour)
    relative = final.relative_to(folder).as_posix()
    if manifest.verified(relative, link.sha256):
        outcome = HourOutcome(
            day, link.hour, ALREADY, relative, link.sha256, link.size_bytes, link.recording_count
        )
        return outcome, links
    if skip_empty and link.empty:
        outcome = HourOutcome(day, link.hour, SKIPPED, detail="no recordings in this hour")
        return outcome, links
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    for _attempt in range(MAX_ATTEMPTS):
        try:
            with api.archive(link.url or "") as response, part.open("wb") as out:
                for chunk in response.iter_bytes(CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            report.downloads += 1
            break
        except ApiError as error:
            if error.status == 429:
                wait = error.retry_after if error.retry_after is not None else DEFAULT_RETRY_AFTER
                report.waited_seconds += wait
                sleep(wait)
                continue
            if error.status == 410:  # the link expired while we waited: ask for the day again
                links = api.day_links(day)
                link = links.hours[index]
                if link.status != "available":
                    outcome = HourOutcome(day, link.hour, link.status, detail=error.detail)
                    return outcome, links
                continue
            raise
    else:
        outcome = HourOutcome(day, link.hour, PENDING, detail="gave up after too many attempts")
        return outcome, links
    try:
        recordings = verify_archive(part, link, links.tenant_id, day)
    except VerificationError as error:
        rejected = folder / REJECTED / f"{day}-{link.hour:02d}.zip"
        rejected.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, rejected)
        (rejected.with_suffix(".why.txt")).write_text(f"{error}\n")
        outcome = HourOutcome(
            day,
            link.hour,
            REJECTED_OUTCOME,
            rejected.relative_to(folder).as_posix(),
            detail=str(error),
        )
        return outcome, links
    os.replace(part, final)
    entry: dict[str, object] = {
        "file": relative,
        "sha256": link.sha256,
        "sizeBytes": link.size_bytes,
        "recordings": recordings,
        "tenantId": links.tenant_id,
        "utcDay": day,
        "hour": link.hour,
        "fetchedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    manifest.add(entry)
    outcome = HourOutcome(
        day, link.hour, FETCHED, relative, link.sha256, link.size_bytes, recordings
    )
    return outcome, links


def outcome_json(outcome: HourOutcome) -> dict[str, object]:
    return asdict(outcome)
