"""``recordings-client``: fetch days of archives for a compliance team's nightly job.

The token comes from ``RECORDINGS_TOKEN`` or ``--token-file``, never from the command line (it
would be in the shell's history and in ``ps``). Exit codes a scheduler can act on:

- 0: every hour asked for is in the folder, verified (or skipped as empty when asked);
- 2: some hours are ``pending`` or ``failed`` on the server: run again later;
- 3: some hours have ``expired`` (outside the tenant's retention): they cannot be fetched;
- 4: some files failed verification and were kept under ``rejected/``: investigate;
- 1: the request itself was wrong (token, permissions, dates, API unreachable).
The gravest that applies wins.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import TextIO

from recordings_client.api import ApiError, ArchivesApi
from recordings_client.fetch import (
    ALREADY,
    EXPIRED,
    FAILED,
    FETCHED,
    PENDING,
    REJECTED_OUTCOME,
    SKIPPED,
    HourOutcome,
    fetch_days,
)

TOKEN_VARIABLE = "RECORDINGS_TOKEN"  # noqa: S105 - the variable's name, not a secret
EXIT_OK, EXIT_USAGE, EXIT_PENDING, EXIT_EXPIRED, EXIT_REJECTED = 0, 1, 2, 3, 4


def _days(first: str, last: str | None) -> list[str]:
    start = date.fromisoformat(first)
    end = date.fromisoformat(last) if last else start
    if end < start:
        raise ValueError(f"--to {end} is before --day {start}")
    return [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


def _token(token_file: Path | None) -> str:
    if token_file is not None:
        return token_file.read_text().strip()
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        raise ValueError(f"no token: set {TOKEN_VARIABLE} or pass --token-file FILE")
    return token


def _progress(stream: TextIO) -> Callable[[HourOutcome], None]:
    tty = stream.isatty()

    def show(outcome: HourOutcome) -> None:
        text = f"{outcome.utc_day} {outcome.hour:02d}:00 {outcome.outcome}"
        if outcome.detail:
            text += f" ({outcome.detail})"
        if tty:
            print(f"\r\033[K{text}", end="" if outcome.outcome in (FETCHED, ALREADY) else "\n",
                  file=stream, flush=True)  # fmt: skip
        else:
            print(text, file=stream, flush=True)

    return show


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="recordings-client", description=(__doc__ or "").splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch", help="fetch and verify one UTC day or a range of days")
    fetch.add_argument("--api", required=True, help="the API's base URL, e.g. https://host")
    fetch.add_argument("--day", required=True, help="UTC day, YYYY-MM-DD")
    fetch.add_argument("--to", help="last UTC day of a range (inclusive)")
    fetch.add_argument("--dest", type=Path, required=True, help="folder to fetch into")
    fetch.add_argument("--token-file", type=Path, help=f"file holding the token ({TOKEN_VARIABLE})")
    fetch.add_argument(
        "--skip-empty",
        action="store_true",
        help="do not download hours the API reports empty (each download counts)",
    )
    args = parser.parse_args(argv)
    try:
        days = _days(args.day, args.to)
        api = ArchivesApi(args.api, _token(args.token_file))
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = fetch_days(
            api, days, args.dest, skip_empty=args.skip_empty, on_progress=_progress(sys.stderr)
        )
    except ApiError as error:
        print(f"error: the API refused: {error}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        api.close()
    counts = {name: report.count(name) for name in
              (FETCHED, ALREADY, SKIPPED, PENDING, FAILED, EXPIRED, REJECTED_OUTCOME)}  # fmt: skip
    print(
        ", ".join(f"{n} {name}" for name, n in counts.items() if n)
        + f"; {report.downloads} downloads, {report.waited_seconds:.0f} s waited for the limit"
    )
    if counts[REJECTED_OUTCOME]:
        return EXIT_REJECTED
    if counts[EXPIRED]:
        return EXIT_EXPIRED
    if counts[PENDING] or counts[FAILED]:
        return EXIT_PENDING
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
