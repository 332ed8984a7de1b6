"""Verify a stored hourly archive against what the pipeline recorded, independently of how it
was written: the integrity check operators run every day.

An archive is intact when the object is exactly the bytes the materialization describes (size
and SHA-256), the ZIP opens and every entry's CRC holds, and its `metadata.json` tells the truth
about the ZIP: it names this tenant and hour, every recording it lists is an entry of the listed
size and SHA-256, no entry is unlisted, and its counts add up.
"""

import hashlib
import json
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

from recordings.archive.hourly import METADATA_NAME
from recordings.keys import hour_start


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _listed_recordings(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        recording
        for conversation in metadata.get("conversations", [])
        for session in conversation.get("sessions", [])
        for recording in session.get("recordings", [])
    ]


def _check_metadata(
    archive: zipfile.ZipFile, tenant_id: str, hour: datetime, problems: list[str]
) -> None:
    try:
        metadata = json.loads(archive.read(METADATA_NAME))
    except KeyError:
        problems.append(f"{METADATA_NAME} is missing")
        return
    except ValueError as exc:
        problems.append(f"{METADATA_NAME} is not JSON: {exc}")
        return
    start = hour_start(hour)
    if metadata.get("tenantId") != tenant_id or metadata.get("hour") != start.hour:
        problems.append(
            f"{METADATA_NAME} names tenant {metadata.get('tenantId')!r} hour "
            f"{metadata.get('hour')!r}, not {tenant_id!r} hour {start.hour}"
        )
    if metadata.get("utcDay") != start.date().isoformat():
        problems.append(f"{METADATA_NAME} names day {metadata.get('utcDay')!r}")
    listed = _listed_recordings(metadata)
    entries = {info.filename: info for info in archive.infolist()}
    for recording in listed:
        path = recording.get("path")
        opus = recording.get("opus", {})
        if path not in entries:
            problems.append(f"{METADATA_NAME} lists {path!r}, which is not in the ZIP")
            continue
        data = archive.read(path)
        if len(data) != opus.get("sizeBytes"):
            problems.append(
                f"{path}: {len(data)} bytes, {METADATA_NAME} says {opus.get('sizeBytes')}"
            )
        if hashlib.sha256(data).hexdigest() != opus.get("sha256"):
            problems.append(f"{path}: SHA-256 differs from {METADATA_NAME}")
    unlisted = set(entries) - {r.get("path") for r in listed} - {METADATA_NAME}
    if unlisted:
        problems.append(f"entries not listed in {METADATA_NAME}: {sorted(unlisted)[:5]}")
    counts = metadata.get("counts", {})
    if counts.get("recordings") != len(listed):
        problems.append(f"counts.recordings is {counts.get('recordings')}, {len(listed)} listed")
    if counts.get("failedRecordings") != len(metadata.get("failedRecordings", [])):
        problems.append("counts.failedRecordings does not match the failedRecordings list")


def verify_archive(
    path: Path,
    *,
    tenant_id: str,
    hour: datetime,
    expected_sha256: str | None,
    expected_size: int | None,
) -> list[str]:
    """What is wrong with the archive at `path` (empty when it is intact)."""
    problems: list[str] = []
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        problems.append(f"size is {size} bytes, the materialization recorded {expected_size}")
    if expected_sha256 and file_sha256(path) != expected_sha256:
        problems.append("SHA-256 differs from the one the materialization recorded")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            if bad is not None:
                problems.append(f"entry {bad!r} fails its CRC check")
            _check_metadata(archive, tenant_id, hour, problems)
    except zipfile.BadZipFile as exc:
        problems.append(f"not a readable ZIP: {exc}")
    return problems
