"""``recordings-client``: fetch days of archives for a compliance team's nightly job.

The token comes from ``RECORDINGS_TOKEN`` or ``--token-file``, never from the command line (it
would be in the shell's history and in ``ps``). Exit codes a scheduler can act on:

- 0: every hour asked for is in the folder, verified (or skipped as empty when asked);
- 2: some hours are ``pending`` or ``failed`` on the server: run again later;
- 3: some hours have ``expired`` (outside the tenant's retention): they cannot be fetched;
- 4: some files failed verification and were kept under ``rejected/``: investigate;
- 1: the request itself was wrong (token, permissions, dates, API unreachable, folder busy).

The gravest that applies wins (4, then 3, then 2).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from recordings_client.api import ApiError, ArchivesApi, NetworkError
from recordings_client.fetch import (
    ALREADY,
    EXPIRED,
    FAILED,
    FETCHED,
    PENDING,
    REJECTED_OUTCOME,
    SKIPPED,
    FetchReport,
    FolderBusy,
    fetch_days,
)
from recordings_client.progress import Progress

TOKEN_VARIABLE = "RECORDINGS_TOKEN"  # noqa: S105 - the variable's name, not a secret
API_VARIABLE = "RECORDINGS_API"
EXIT_OK, EXIT_USAGE, EXIT_PENDING, EXIT_EXPIRED, EXIT_REJECTED = 0, 1, 2, 3, 4
SUMMARY_ORDER = (FETCHED, ALREADY, SKIPPED, PENDING, FAILED, EXPIRED, REJECTED_OUTCOME)


def days_between(first: str, last: str | None, today: date | None = None) -> list[str]:
    """The UTC days from `first` to `last` inclusive; "yesterday" is the last UTC day over."""
    today = today or datetime.now(UTC).date()

    def parse(text: str, option: str) -> date:
        if text == "yesterday":
            return today - timedelta(days=1)
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{option} {text!r}: write a UTC day as YYYY-MM-DD") from None

    start = parse(first, "--day")
    end = parse(last, "--to") if last else start
    if end < start:
        raise ValueError(f"--to {end} is before --day {start}")
    if end >= today:
        raise ValueError(f"{end} is not over yet (UTC): the last day you can fetch is yesterday")
    return [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


def read_token(token_file: Path | None) -> str:
    if token_file is not None:
        token = token_file.read_text().strip()
        if not token:
            raise ValueError(f"--token-file {token_file} is empty")
        return token
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        raise ValueError(f"no token: set {TOKEN_VARIABLE} or pass --token-file FILE")
    return token


def exit_code(report: FetchReport) -> int:
    if report.count(REJECTED_OUTCOME):
        return EXIT_REJECTED
    if report.count(EXPIRED):
        return EXIT_EXPIRED
    if report.count(PENDING) or report.count(FAILED):
        return EXIT_PENDING
    return EXIT_OK


def summary(report: FetchReport) -> str:
    counts = ", ".join(
        f"{report.count(name)} {name}" for name in SUMMARY_ORDER if report.count(name)
    )
    return (
        f"{counts or 'nothing to fetch'}; {report.downloads} downloads spent, "
        f"{report.waited_seconds:.0f} s waited for the download limit, "
        f"{report.links_refreshed} expired links renewed"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recordings-client",
        description="Fetch and verify a tenant's daily conversation audio archives.",
        epilog=f"The token is read from ${TOKEN_VARIABLE} or --token-file, never from the "
        "command line. Exit codes: 0 all verified, 1 request refused or unreachable, "
        "2 hours pending/failed (run again later), 3 hours expired, 4 files rejected.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser(
        "fetch",
        help="fetch and verify one UTC day or a range of days",
        description="Fetch every hour of the days into DEST/yyyy/MM/dd/HH.zip, paced by the "
        "download limit, each file verified (size, SHA-256, metadata.json) and listed in "
        "DEST/manifest.jsonl; run it again to resume.",
    )
    fetch.add_argument(
        "--api",
        default=os.environ.get(API_VARIABLE),
        help=f"the API's base URL, e.g. https://recordings.example.com (default ${API_VARIABLE})",
    )
    fetch.add_argument("--day", default="yesterday", help="UTC day, YYYY-MM-DD (default yesterday)")
    fetch.add_argument("--to", help="last UTC day of a range (inclusive)")
    fetch.add_argument("--dest", type=Path, required=True, help="folder to fetch into")
    fetch.add_argument(
        "--token-file", type=Path, help=f"file holding the token (or ${TOKEN_VARIABLE})"
    )
    fetch.add_argument(
        "--max-wait",
        type=float,
        metavar="SECONDS",
        help="wait at most this long in all for the download limit; past it, the hours left "
        "are reported pending (exit 2) for a later run to resume (default: wait as told)",
    )
    fetch.add_argument(
        "--skip-empty",
        action="store_true",
        help="do not download hours the API reports empty (each download counts)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if not args.api:
            raise ValueError(f"no API: pass --api URL or set {API_VARIABLE}")
        if args.max_wait is not None and args.max_wait < 0:
            raise ValueError(f"--max-wait {args.max_wait:g}: give a number of seconds, 0 or more")
        days = days_between(args.day, args.to)
        token = read_token(args.token_file)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    progress = Progress(sys.stderr, total_hours=24 * len(days))

    def sleep(seconds: float) -> None:
        progress.wait(seconds)
        time.sleep(seconds)

    with ArchivesApi(args.api, token) as api:
        try:
            report = fetch_days(
                api,
                days,
                args.dest,
                skip_empty=args.skip_empty,
                sleep=sleep,
                on_hour=progress.hour,
                on_bytes=progress.received,
                max_wait=args.max_wait,
            )
        except ApiError as error:
            progress.finish()
            print(f"error: the API refused: {error}", file=sys.stderr)
            return EXIT_USAGE
        except (NetworkError, FolderBusy, OSError) as error:
            progress.finish()
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USAGE
    progress.finish()
    print(summary(report))
    return exit_code(report)


if __name__ == "__main__":
    sys.exit(main())
