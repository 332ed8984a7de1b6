"""Hostile values in every parameter and header, over HTTP against the real app.

Tenant claims of the wrong type or shape, tenant ids and days with path traversal and odd
Unicode, malformed and out-of-range dates and times, odd Authorization headers: each gets a
4xx JSON error with a stable code, never a 5xx, and a refusal changes nothing. Oversized
queries and headers are sent to a real uvicorn process, which must refuse them and keep
serving. (NUL bytes: tests/api/test_text_parameters.py; signature, expiry, audience and issuer
attacks: tests/domain/test_tokens.py and tests/api/test_day_links.py.)
"""

import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from recordings.catalog import ensure_tenant, set_recording_settings
from recordings.db.engine import session_scope
from recordings.db.models import TenantRecordingSettings, TenantRecordingSettingsChange
from recordings_api.app import create_app
from recordings_api.settings import ApiSettings
from recordings_cli.local_api import LocalApiServer, free_port
from tests.api.conftest import JWT_SECRET
from tests.security.conftest import (
    HOST_AUDIT,
    LINKS,
    TENANT_AUDIT,
    audit_rows,
    bearer,
    host_bearer,
    token,
)

pytestmark = [pytest.mark.integration, pytest.mark.resilience]

YESTERDAY = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
HOST_SETTINGS = "/api/v1/host/tenants/{}/daily-conversation-audio-recordings/settings"
HOST_DELETIONS = "/api/v1/host/daily-conversation-audio-recordings/deletions"


@pytest.fixture
def client(
    api_settings: Callable[..., ApiSettings],
    dagster_instance: dg.DagsterInstance,
    engine: sa.Engine,
) -> Iterator[TestClient]:
    """acme and globex enabled; an empty Dagster instance (every hour pending)."""
    with session_scope(engine) as session:
        for tenant in ("acme", "globex"):
            ensure_tenant(session, tenant)
            set_recording_settings(session, tenant, changed_by="test", enabled=True)
    with TestClient(
        create_app(api_settings(), dagster_instance), raise_server_exceptions=False
    ) as c:
        yield c


def _settings_state(engine: sa.Engine) -> tuple[list[tuple[str, bool, int]], int]:
    with session_scope(engine) as session:
        rows = [
            (r.tenant_id, r.enabled, r.retention_days)
            for r in session.scalars(sa.select(TenantRecordingSettings))
        ]
        changes = session.scalar(
            sa.select(sa.func.count()).select_from(TenantRecordingSettingsChange)
        )
    return sorted(rows), int(changes or 0)


# --- the tenant claim ---------------------------------------------------------------------

TENANT_CLAIMS = {
    "number": (42, 401, "malformed_token"),
    "list": (["acme"], 401, "malformed_token"),
    "object": ({"id": "acme"}, 401, "malformed_token"),
    "boolean": (True, 401, "malformed_token"),
    "traversal": ("../b", 401, "malformed_token"),
    "traversal-to-tenant": ("acme/../globex", 401, "malformed_token"),
    "cyrillic-lookalike": ("\u0430cme", 401, "malformed_token"),
    "zero-width": ("ac\u200bme", 401, "malformed_token"),
    "rtl-override": ("acme\u202e", 401, "malformed_token"),
    "combining": ("acme\u0301", 401, "malformed_token"),
    "fullwidth": ("\uff41cme", 401, "malformed_token"),
    "uppercase": ("ACME", 401, "malformed_token"),
    "empty": ("", 403, "permission_missing"),
    "missing": (None, 403, "permission_missing"),
}


@pytest.mark.parametrize("case", TENANT_CLAIMS, ids=list(TENANT_CLAIMS))
def test_a_wrong_tenant_claim_is_refused_with_its_code_and_audited_without_a_tenant(
    client: TestClient, engine: sa.Engine, case: str
) -> None:
    claim, status, code = TENANT_CLAIMS[case]
    headers = bearer(claim)
    listing = client.get(LINKS, params={"utcDay": YESTERDAY}, headers=headers)
    own_audit = client.get(TENANT_AUDIT, headers=headers)
    for response in (listing, own_audit):
        assert response.status_code == status, response.text
        assert response.json()["code"] == code
        if status == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")
    # The links request is audited, under no tenant: the claim proved none.
    assert [(r.action, r.tenant_id, r.outcome) for r in audit_rows(engine)] == [
        ("list_links", None, code)
    ]


def test_a_tenant_that_does_not_exist_gets_nothing_and_sees_only_its_own_attempt(
    client: TestClient, engine: sa.Engine
) -> None:
    client.get(LINKS, params={"utcDay": YESTERDAY}, headers=bearer("acme"))  # acme's entry
    listing = client.get(LINKS, params={"utcDay": YESTERDAY}, headers=bearer("ghost"))
    assert listing.status_code == 403
    assert listing.json()["code"] == "feature_disabled"
    own = client.get(TENANT_AUDIT, headers=bearer("ghost"))
    assert own.status_code == 200
    assert [(e["tenantId"], e["outcome"]) for e in own.json()["entries"]] == [
        ("ghost", "feature_disabled")
    ]
    assert [(r.tenant_id, r.outcome) for r in audit_rows(engine)] == [
        ("acme", "listed"),
        ("ghost", "feature_disabled"),
    ]


# --- tenant ids in host paths and queries -----------------------------------------------

# Raw (already percent-encoded) path segments: traversal, overlong UTF-8, odd Unicode, length.
HOSTILE_TENANT_SEGMENTS = {
    "dotdot-slash-encoded": "..%2fglobex",
    "dotdot-slash-upper": "..%2F..%2Fglobex",
    "encoded-dots": "%2e%2e",
    "overlong-dots": "%c0%ae%c0%ae",
    "overlong-slash": "acme%c0%afglobex",
    "backslash": "acme%5c..%5cglobex",
    "rtl-override": "acme%e2%80%ae",
    "zero-width": "ac%e2%80%8bme",
    "combining": "acme%cc%81",
    "cyrillic-lookalike": "%d0%b0cme",
    "invalid-utf8": "%ff%fe",
    "uppercase": "ACME",
    "too-long": "a" * 64,
    "very-long": "a" * 8000,
}


@pytest.mark.parametrize("segment", HOSTILE_TENANT_SEGMENTS.values(), ids=HOSTILE_TENANT_SEGMENTS)
def test_hostile_tenant_ids_in_host_paths_are_4xx_and_change_nothing(
    client: TestClient, engine: sa.Engine, segment: str
) -> None:
    before = _settings_state(engine)
    path = HOST_SETTINGS.format(segment)
    host = host_bearer()
    responses = [
        client.get(path, headers=host),
        client.get(f"{path}/changes", headers=host),
        client.put(path, json={"enabled": False}, headers=host),
        client.put(path, json={"enabled": True, "retentionDays": 1}, headers=host),
    ]
    for response in responses:
        assert response.status_code in {400, 404}, (response.request.url, response.text)
        assert response.json()["code"] in {"invalid_request", "not_found"}, response.text
    assert _settings_state(engine) == before


HOSTILE_TENANT_QUERIES = {
    "traversal": "../acme",
    "slash": "acme/../globex",
    "backslash": "acme\\..\\globex",
    "rtl-override": "acme\u202e",
    "zero-width": "ac\u200bme",
    "combining": "acme\u0301",
    "cyrillic-lookalike": "\u0430cme",
    "percent-encoded": "%61cme",
    "overlong-dots": "\xc0\xae\xc0\xae",
}


@pytest.mark.parametrize("value", HOSTILE_TENANT_QUERIES.values(), ids=HOSTILE_TENANT_QUERIES)
@pytest.mark.parametrize("path", [HOST_AUDIT, HOST_DELETIONS], ids=["audit", "deletions"])
def test_hostile_tenant_id_filters_are_400(client: TestClient, path: str, value: str) -> None:
    client.get(LINKS, params={"utcDay": YESTERDAY}, headers=bearer("acme"))  # an entry to leak
    response = client.get(path, params={"tenantId": value}, headers=host_bearer())
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_request"
    assert "tenant id" in response.json()["detail"]


# --- days and times ---------------------------------------------------------------------

BAD_DAYS = {
    "february-30": ("2026-02-30", "invalid_day"),
    "month-13": ("2026-13-01", "invalid_day"),
    "expanded-year": ("+002026-01-01", "invalid_day"),
    "negative-year": ("-2026-01-01", "invalid_day"),
    "five-digit-year": ("20260-01-01", "invalid_day"),
    "unpadded": ("2026-1-1", "invalid_day"),
    "basic-format": ("20260101", "invalid_day"),
    "week-date": ("2026-W01-1", "invalid_day"),
    "ordinal-date": ("2026-001", "invalid_day"),
    "with-time": ("2026-01-01T00:00", "invalid_day"),
    "fullwidth-digits": ("\uff12\uff10\uff12\uff16-01-01", "invalid_day"),
    "arabic-indic-digit": ("2026-01-0\u0661", "invalid_day"),
    "zero-width": ("2026-01-01\u200b", "invalid_day"),
    "rtl-override": ("\u202e2026-01-01", "invalid_day"),
    "combining": ("2026-01-01\u0301", "invalid_day"),
    "traversal": ("../2026-01-01", "invalid_day"),
    "encoded-traversal": ("..%2f..%2f", "invalid_day"),
    "overlong-utf8": ("\xc0\xae\xc0\xae", "invalid_day"),
    "spaces": (" 2026-01-01 ", "invalid_day"),
    "empty": ("", "missing_day"),
    "far-future": ("9999-12-31", "day_not_over"),
    "too-long": ("2026-01-01" * 10, "invalid_request"),
}


@pytest.mark.parametrize("case", BAD_DAYS, ids=list(BAD_DAYS))
def test_malformed_days_are_400_with_a_stable_code(
    client: TestClient, engine: sa.Engine, case: str
) -> None:
    value, code = BAD_DAYS[case]
    response = client.get(LINKS, params={"utcDay": value}, headers=bearer("acme"))
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    assert "url" not in response.text
    if code != "invalid_request":  # a too-long value is refused before the handler runs
        assert [(r.tenant_id, r.outcome, r.status_code) for r in audit_rows(engine)] == [
            ("acme", code, 400)
        ]


def test_a_day_long_past_is_expired_not_an_error(client: TestClient) -> None:
    response = client.get(LINKS, params={"utcDay": "0001-01-01"}, headers=bearer("acme"))
    assert response.status_code == 200, response.text
    assert {h["status"] for h in response.json()["hours"]} == {"expired"}
    assert "url" not in response.text


@pytest.mark.parametrize(
    "params",
    [
        {"since": "0001-01-01T00:00:00+14:00"},
        {"until": "0001-01-01T00:30:00+01:00"},
        {"since": "9999-12-31T23:59:59-14:00"},
    ],
    ids=["since-before-year-1", "until-before-year-1", "since-after-year-9999"],
)
@pytest.mark.parametrize("path", [TENANT_AUDIT, HOST_AUDIT], ids=["tenant", "host"])
def test_audit_times_outside_the_representable_range_are_400(
    client: TestClient, path: str, params: dict[str, str]
) -> None:
    headers = host_bearer() if path == HOST_AUDIT else bearer("acme")
    response = client.get(path, params=params, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_request"


# --- the Authorization header -----------------------------------------------------------


def _authorization_cases() -> dict[str, tuple[list[tuple[bytes, bytes]], int, str]]:
    acme, globex = token("acme"), token("globex")
    return {
        "basic-scheme": ([(b"authorization", b"Basic YWNtZTpzZWNyZXQ=")], 401, "missing_token"),
        "no-scheme": ([(b"authorization", acme.encode())], 401, "missing_token"),
        "scheme-only": ([(b"authorization", b"Bearer")], 401, "missing_token"),
        "scheme-and-blank": ([(b"authorization", b"Bearer    ")], 401, "missing_token"),
        "tab-separated": ([(b"authorization", f"Bearer\t{acme}".encode())], 401, "missing_token"),
        "two-tokens": ([(b"authorization", f"Bearer {acme} {globex}".encode())], 401, ""),
        "comma-joined": ([(b"authorization", f"Bearer {acme}, Bearer {globex}".encode())], 401, ""),
        "two-headers": (
            [
                (b"authorization", f"Bearer {acme}".encode()),
                (b"authorization", f"Bearer {globex}".encode()),
            ],
            401,
            "",
        ),
        "huge": ([(b"authorization", b"Bearer " + b"a" * 200_000)], 401, "malformed_token"),
        "non-ascii": ([(b"authorization", "Bearer \u00e9\u00ff\u00e0".encode("latin-1"))], 401, ""),
        "utf8-bytes": (
            [(b"authorization", "Bearer \u0442\u043e\u043a\u0435\u043d".encode())],
            401,
            "",
        ),
        "control-chars": ([(b"authorization", b"Bearer \x01\x02\x7f")], 401, ""),
    }


AUTHORIZATION_CASES = list(_authorization_cases())


@pytest.mark.parametrize("case", AUTHORIZATION_CASES)
@pytest.mark.parametrize("path", [LINKS, TENANT_AUDIT, HOST_AUDIT], ids=["links", "audit", "host"])
def test_odd_authorization_headers_are_401(
    client: TestClient, engine: sa.Engine, path: str, case: str
) -> None:
    headers, status, code = _authorization_cases()[case]
    response = client.get(path, params={"utcDay": YESTERDAY}, headers=headers)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code if code else body["code"] in {"malformed_token", "missing_token"}
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert not [r for r in audit_rows(engine) if r.tenant_id is not None]


# --- oversized requests against a real uvicorn process ----------------------------------


@pytest.fixture
def api_server(
    recordings_env: dict[str, str],
    engine: sa.Engine,
    dagster_home: Path,
    tmp_path: Path,
) -> Iterator[LocalApiServer]:
    with session_scope(engine) as session:
        ensure_tenant(session, "acme")
        set_recording_settings(session, "acme", changed_by="test", enabled=True)
    env = {
        **recordings_env,
        "RECORDINGS_JWT_DEV_SECRET": JWT_SECRET,
        "RECORDINGS_LINK_KEYS": "k1:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU=",
        "DAGSTER_HOME": str(dagster_home),
    }
    with LocalApiServer(port=free_port(), env=env, log_path=tmp_path / "api.log") as server:
        yield server


def _raw_status(server: LocalApiServer, target: str, headers: dict[str, str]) -> int | None:
    """Send one GET as raw bytes (HTTP clients refuse to build such requests); the status the
    server answers, or None when it closes the connection without answering."""
    lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        try:
            connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        except (BrokenPipeError, ConnectionResetError):
            pass  # it stopped reading: it may still have answered
        try:
            reply = connection.recv(64)
        except ConnectionResetError:
            return None
    if not reply:
        return None
    return int(reply.split(b" ", 2)[1])


@pytest.mark.slow
def test_oversized_queries_and_headers_are_refused_and_the_server_keeps_serving(
    api_server: LocalApiServer, engine: sa.Engine
) -> None:
    headers = bearer("acme")
    oversized: list[tuple[str, dict[str, str]]] = [
        (f"{LINKS}?utcDay={YESTERDAY}&pad={'a' * 64 * 1024}", headers),
        (f"{LINKS}?utcDay={YESTERDAY}&pad={'a' * 1024 * 1024}", headers),
        (f"{LINKS}?utcDay={'9' * 64 * 1024}", headers),
        (f"{LINKS}?utcDay={YESTERDAY}", {"Authorization": "Bearer " + "a" * 1024 * 1024}),
    ]
    answers = [_raw_status(api_server, target, extra) for target, extra in oversized]
    # Refused: a 4xx, or the connection closed unanswered; never served, never a 5xx.
    for answer in answers:
        assert answer is None or 400 <= answer < 500, answers
    with httpx.Client(base_url=api_server.url, timeout=30) as http:
        assert http.get("/health/live").status_code == 200
        listing = http.get(LINKS, params={"utcDay": YESTERDAY}, headers=headers)
        assert listing.status_code == 200, listing.text
    # Only the last request was served; the oversized ones that reached the app were refused.
    outcomes = [r.outcome for r in audit_rows(engine)]
    assert outcomes.count("listed") == 1
    assert set(outcomes) <= {"listed", "invalid_request", "malformed_token"}
