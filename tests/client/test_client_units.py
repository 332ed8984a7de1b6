"""The client's pure parts: verifying a webhook event, progress for people and for logs, the
days asked for, the token, the manifest after a kill, exit codes and the folder lock."""

import io
import json
import time
from datetime import date
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from recordings.webhooks.signing import derive_secret, new_message_id, new_salt, sign
from recordings_client import FolderBusy, HourOutcome, Manifest, verify_webhook
from recordings_client.cli import (
    EXIT_EXPIRED,
    EXIT_OK,
    EXIT_PENDING,
    EXIT_REJECTED,
    days_between,
    exit_code,
    read_token,
)
from recordings_client.fetch import FetchReport, folder_lock
from recordings_client.progress import Progress
from recordings_client.webhooks import WebhookVerificationError

KEY = b"k" * 32
BODY = json.dumps(
    {"type": "day.ready", "timestamp": "2026-12-02T00:05:00Z", "data": {"utcDay": "2026-12-01"}},
    separators=(",", ":"),
).encode()


def _signed(secrets: list[str], body: bytes = BODY, at: int | None = None) -> dict[str, str]:
    return sign(secrets, new_message_id(), int(time.time()) if at is None else at, body)


def test_an_event_signed_by_the_service_verifies_with_the_client_and_the_reference() -> None:
    secret = derive_secret(KEY, new_salt())
    headers = _signed([secret])
    event = verify_webhook(secret, headers, BODY)
    assert event["type"] == "day.ready" and event["data"] == {"utcDay": "2026-12-01"}
    assert Webhook(secret).verify(BODY, headers) == event  # the Standard Webhooks library agrees
    # Header names in any case, as web frameworks hand them over.
    assert verify_webhook(secret, {k.title(): v for k, v in headers.items()}, BODY) == event


def test_during_a_rotation_either_secret_verifies() -> None:
    old, new = derive_secret(KEY, new_salt()), derive_secret(KEY, new_salt())
    headers = _signed([new, old])
    assert len(headers["webhook-signature"].split()) == 2
    assert verify_webhook(old, headers, BODY) == verify_webhook(new, headers, BODY)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("altered body", "no signature matches"),
        ("other secret", "no signature matches"),
        ("replayed", "beyond the 300 s tolerance"),
        ("no signature", "missing webhook-id"),
        ("bad timestamp", "not an integer"),
    ],
)
def test_what_does_not_verify_is_refused_saying_why(case: str, message: str) -> None:
    secret = derive_secret(KEY, new_salt())
    headers = _signed([secret], at=int(time.time()) - 3600 if case == "replayed" else None)
    body = BODY
    if case == "altered body":
        body = BODY.replace(b"2026-12-01", b"2026-11-30")
    if case == "other secret":
        secret = derive_secret(KEY, new_salt())
    if case == "no signature":
        del headers["webhook-signature"]
    if case == "bad timestamp":
        headers["webhook-timestamp"] = "soon"
    with pytest.raises(WebhookVerificationError, match=message):
        verify_webhook(secret, headers, body)


def test_progress_is_plain_lines_for_logs_and_a_bar_in_a_terminal() -> None:
    fetched = HourOutcome("2026-12-01", 0, "fetched")
    pending = HourOutcome("2026-12-01", 1, "pending", detail="not archived yet")
    log = io.StringIO()
    plain = Progress(log, total_hours=24, tty=False)
    plain.hour(fetched)
    plain.wait(12)
    plain.hour(pending)
    plain.finish()
    assert log.getvalue().splitlines() == [
        "[1/24] 2026-12-01 00:00 fetched",
        "waiting 12 s for the download limit",
        "[2/24] 2026-12-01 01:00 pending: not archived yet",
    ]
    screen = io.StringIO()
    bar = Progress(screen, total_hours=24, tty=True)
    bar.received(1_500_000)
    bar.hour(fetched)
    bar.hour(pending)
    bar.finish()
    shown = screen.getvalue()
    assert "\r" in shown and "2/24 hours, 1.5 MB" in shown
    assert "2026-12-01 01:00 pending: not archived yet\n" in shown  # what needs a look stays
    assert "00:00 fetched" not in shown  # the bar says enough for a fetched hour


def test_days_are_utc_days_that_are_over() -> None:
    today = date(2026, 12, 2)
    assert days_between("yesterday", None, today) == ["2026-12-01"]
    assert days_between("2026-11-29", "2026-12-01", today) == [
        "2026-11-29",
        "2026-11-30",
        "2026-12-01",
    ]
    with pytest.raises(ValueError, match="before --day"):
        days_between("2026-12-01", "2026-11-30", today)
    with pytest.raises(ValueError, match="not over yet"):
        days_between("2026-12-02", None, today)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        days_between("1/12/2026", None, today)


def test_the_token_comes_from_the_environment_or_a_file_never_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECORDINGS_TOKEN", raising=False)
    with pytest.raises(ValueError, match="set RECORDINGS_TOKEN or pass --token-file"):
        read_token(None)
    monkeypatch.setenv("RECORDINGS_TOKEN", " from-env \n")
    assert read_token(None) == "from-env"
    file = tmp_path / "token"
    file.write_text("from-file\n")
    assert read_token(file) == "from-file"
    file.write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        read_token(file)


def test_a_manifest_line_cut_by_a_kill_is_ignored(tmp_path: Path) -> None:
    whole = {"file": "2026/12/01/00.zip", "sha256": "a" * 64, "sizeBytes": 3}
    (tmp_path / "manifest.jsonl").write_text(json.dumps(whole) + '\n{"file": "2026/12/0')
    assert list(Manifest(tmp_path).entries) == ["2026/12/01/00.zip"]


def test_the_gravest_outcome_sets_the_exit_code() -> None:
    def report(*outcomes: str) -> FetchReport:
        return FetchReport([HourOutcome("2026-12-01", n, o) for n, o in enumerate(outcomes)])

    assert exit_code(report("fetched", "already_verified", "skipped_empty")) == EXIT_OK
    assert exit_code(report("fetched", "pending")) == EXIT_PENDING
    assert exit_code(report("failed", "expired", "pending")) == EXIT_EXPIRED
    assert exit_code(report("expired", "rejected", "pending")) == EXIT_REJECTED


def test_two_clients_never_fetch_into_one_folder_at_once(tmp_path: Path) -> None:
    with folder_lock(tmp_path), pytest.raises(FolderBusy, match="another recordings-client"):
        with folder_lock(tmp_path):
            pass
    with folder_lock(tmp_path):  # released: the next run may go
        pass
