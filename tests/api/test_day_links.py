"""The download API end to end: real pipeline output, real S3, real database, Litestar's client.

A tenant-day is archived by the real job into a temporary Dagster instance; the API then lists
its links and serves downloads, with every refusal checked for its status and stable code.
"""

import base64
import hashlib
import hmac
import io
import json
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar.testing import TestClient
from minio import Minio

from recordings.catalog import ensure_tenant, register_recording, set_recording_settings
from recordings.db.engine import session_scope
from recordings.db.models import DownloadAuditEntry
from recordings.keys import archive_key, archive_partition_key, day_hours
from recordings.links import LinkSigner
from recordings.settings import S3Settings
from recordings.tokens import READ_PERMISSION, TokenSettings, mint_development_token
from recordings_api.app import create_app
from recordings_api.settings import ApiSettings
from recordings_cli.synth import FORMATS, write_conversation
from recordings_dagster.execution import run_request_job
from recordings_dagster.schedules import nightly_run_requests
from recordings_instance.archives import LEGACY_ARCHIVE_ASSET_KEY
from tests.api.conftest import JWT_SECRET
from tests.support import register_unreadable_source

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BASE = "/api/v1/daily-conversation-audio-recordings"


def _token(tenant: str | None = "acme", permissions: list[str] | None = None) -> str:
    return mint_development_token(
        JWT_SECRET,
        subject="compliance-client",
        tenant_id=tenant,
        permissions=[READ_PERMISSION] if permissions is None else permissions,
    )


@pytest.fixture
def archived_day(
    tmp_path: Path,
    recordings_env: dict[str, str],
    engine: sa.Engine,
    s3_client: Minio,
    dagster_instance: dg.DagsterInstance,
) -> tuple[dg.DagsterInstance, date]:
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    source = recordings_env["RECORDINGS_SOURCE_BUCKET"]
    with session_scope(engine) as session:
        for tenant in ("acme", "globex"):
            ensure_tenant(session, tenant)
            set_recording_settings(session, tenant, changed_by="test", enabled=True)
        wav = tmp_path / "call.wav"
        write_conversation(wav, FORMATS["wav-ulaw"], 3.0, 8000, 1, seed=1)
        s3_client.fput_object(source, "tenants/acme/call.wav", str(wav))
        register_recording(
            session,
            tenant_id="acme",
            conversation_id="c1",
            session_id="s1",
            recording_id="r1",
            bucket=source,
            object_key="tenants/acme/call.wav",
            started_at=day_hours(day)[5] + timedelta(minutes=3),
            duration_seconds=3.0,
            audio_format="WAV",
            channels=1,
        )
    (request,) = nightly_run_requests(dagster_instance, ["acme"], day)
    with dg.execute_job(
        run_request_job(request), instance=dagster_instance, tags=request.tags
    ) as result:
        assert result.success
    return dagster_instance, day


@pytest.fixture
def client(
    archived_day: tuple[dg.DagsterInstance, date], api_settings: Callable[..., ApiSettings]
) -> Iterator[TestClient]:
    with TestClient(app=create_app(api_settings(), archived_day[0])) as test_client:
        yield test_client


def _links(client: TestClient, day: date, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(BASE, params={"utcDay": day.isoformat()}, headers=headers)


def test_a_day_lists_24_hours_with_links_for_the_archived_ones(
    client: TestClient, archived_day: tuple[dg.DagsterInstance, date], s3_client: Minio
) -> None:
    day = archived_day[1]
    response = _links(client, day, _token())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tenantId"] == "acme" and body["utcDay"] == day.isoformat()
    assert len(body["hours"]) == 24
    assert {h["status"] for h in body["hours"]} == {"available"}
    hour5 = body["hours"][5]
    assert hour5["recordingCount"] == 1 and hour5["sizeBytes"] > 0 and len(hour5["sha256"]) == 64

    download = client.get(hour5["url"].removeprefix("http://testserver"), follow_redirects=False)
    assert download.status_code == 307
    archive = httpx.get(download.headers["location"])  # straight from S3, presigned
    assert archive.status_code == 200
    assert len(archive.content) == hour5["sizeBytes"]


def test_the_eleventh_download_in_an_hour_is_refused_with_retry_after(
    client: TestClient, archived_day: tuple[dg.DagsterInstance, date], engine: sa.Engine
) -> None:
    url = _links(client, archived_day[1], _token()).json()["hours"][0]["url"]
    path = url.removeprefix("http://testserver")
    codes = [client.get(path, follow_redirects=False).status_code for _ in range(11)]
    assert codes == [307] * 10 + [429]
    refused = client.get(path, follow_redirects=False)
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) > 0
    with session_scope(engine) as session:
        outcomes = session.scalars(
            sa.select(DownloadAuditEntry.outcome).where(DownloadAuditEntry.action == "download")
        ).all()
    assert outcomes.count("granted") == 10 and outcomes.count("rate_limited") == 2


@pytest.mark.parametrize(
    ("token", "day_offset", "status", "code"),
    [
        (None, 1, 401, "missing_token"),
        ("garbage", 1, 401, "malformed_token"),
        ("no-permission", 1, 403, "permission_missing"),
        ("no-tenant", 1, 403, "permission_missing"),
        ("disabled", 1, 403, "feature_disabled"),
        ("acme", 0, 400, "day_not_over"),
    ],
)
def test_refusals_have_their_status_and_code(
    client: TestClient,
    engine: sa.Engine,
    token: str | None,
    day_offset: int,
    status: int,
    code: str,
) -> None:
    tokens = {
        None: None,
        "garbage": "garbage",
        "no-permission": _token(permissions=[]),
        "no-tenant": _token(tenant=None),
        "disabled": _token(tenant="initech"),
        "acme": _token(),
    }
    with session_scope(engine) as session:
        ensure_tenant(session, "initech")
        set_recording_settings(session, "initech", changed_by="test", enabled=False)
    day = (datetime.now(UTC) - timedelta(days=day_offset)).date()
    response = _links(client, day, tokens[token])
    assert response.status_code == status
    assert response.json()["code"] == code
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_bad_days_are_400(client: TestClient) -> None:
    for value in ("2025-13-01", "yesterday", "2025-1-1"):
        response = client.get(
            BASE, params={"utcDay": value}, headers={"Authorization": f"Bearer {_token()}"}
        )
        assert response.status_code == 400, value
        assert response.json()["code"] == "invalid_day"


def test_a_tampered_or_foreign_link_is_401(
    client: TestClient, archived_day: tuple[dg.DagsterInstance, date]
) -> None:
    url = _links(client, archived_day[1], _token()).json()["hours"][3]["url"]
    path = url.removeprefix("http://testserver")
    payload, _, mac = path.rsplit("/", 1)[1].partition(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    edited = base64.urlsafe_b64encode(raw.replace(b'"acme"', b'"globex"')).rstrip(b"=").decode()
    response = client.get(f"{BASE}/downloads/{edited}.{mac}", follow_redirects=False)
    assert response.status_code == 401
    assert response.json()["code"] == "link_tampered"


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "s3": "ok", "dagster": "ok"}
    paths = client.get("/schema/openapi.json").json()["paths"]
    assert BASE in paths or f"{BASE}/" in paths


def test_readiness_says_what_is_down(
    archived_day: tuple[dg.DagsterInstance, date], api_settings: Callable[..., ApiSettings]
) -> None:
    s3 = S3Settings.from_env()
    dead = S3Settings(
        endpoint="http://127.0.0.1:9",  # discard port: nothing listens
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        region=s3.region,
        archive_bucket=s3.archive_bucket,
        source_bucket=s3.source_bucket,
    )
    settings = api_settings(s3=dead, s3_public_endpoint=dead.endpoint)
    with TestClient(app=create_app(settings, archived_day[0])) as client:
        response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["checks"]["s3"].startswith("unreachable")
    assert body["checks"]["database"] == "ok"


def _path(url: str) -> str:
    return url.removeprefix("http://testserver")


def _audit_rows(engine: sa.Engine) -> list[DownloadAuditEntry]:
    with session_scope(engine) as session:
        rows = list(session.scalars(sa.select(DownloadAuditEntry).order_by(DownloadAuditEntry.id)))
        session.expunge_all()
        return rows


def test_every_links_request_and_download_is_audited_with_its_outcome(
    client: TestClient, archived_day: tuple[dg.DagsterInstance, date], engine: sa.Engine
) -> None:
    day = archived_day[1]
    headers = {"User-Agent": "compliance-bot/2.1"}
    client.get(BASE, params={"utcDay": day.isoformat()}, headers=headers)  # 401
    _links(client, day, _token(permissions=[]))  # 403
    _links(client, datetime.now(UTC).date() + timedelta(days=3), _token())  # 400
    url = _links(client, day, _token()).json()["hours"][7]["url"]  # 200
    client.get(_path(url), follow_redirects=False, headers=headers)  # 307
    client.get(_path(url)[:-3] + "AAA", follow_redirects=False)  # 401

    rows = _audit_rows(engine)
    seen = [(r.action, r.outcome, r.status_code, r.tenant_id) for r in rows]
    assert seen == [
        ("list_links", "missing_token", 401, None),
        ("list_links", "permission_missing", 403, "acme"),
        ("list_links", "day_not_over", 400, "acme"),
        ("list_links", "listed", 200, "acme"),
        ("download", "granted", 307, "acme"),
        ("download", "link_tampered", 401, None),
    ]
    listed, granted = rows[3], rows[4]
    assert listed.utc_day == day and listed.client_subject == "compliance-client"
    # The link carries who it was issued to, so the download is attributable.
    assert granted.client_subject == "compliance-client"
    assert granted.hour == day_hours(day)[7]
    assert granted.object_key is not None and granted.object_key.endswith("/07.zip")
    assert granted.user_agent == "compliance-bot/2.1" and granted.client_address


def _rsa_keys() -> tuple[rsa.RSAPrivateKey, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public_pem


def _unsigned(header: dict[str, object], claims: dict[str, object], key: bytes | None) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signing_input = f"{part(header)}.{part(claims)}"
    if key is None:
        return f"{signing_input}."
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


@pytest.mark.parametrize(
    "attack",
    [
        "alg-none",
        "hs-rs-confusion",
        "forged-signature",
        "expired",
        "not-yet-valid",
        "wrong-audience",
        "wrong-issuer",
        "oversized",
    ],
)
def test_token_attacks_are_refused_over_http(
    archived_day: tuple[dg.DagsterInstance, date],
    api_settings: Callable[..., ApiSettings],
    engine: sa.Engine,
    attack: str,
) -> None:
    private, public_pem = _rsa_keys()
    issuer, audience = "https://idp.example", "recordings-api"
    settings = api_settings(
        tokens=TokenSettings(algorithm="RS256", key=public_pem, issuer=issuer, audience=audience)
    )
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": "attacker",
        "tenant_id": "acme",
        "permissions": [READ_PERMISSION],
        "iss": issuer,
        "aud": audience,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(hours=1)).timestamp()),
    }
    stranger, _ = _rsa_keys()
    tokens = {
        "alg-none": lambda: _unsigned({"alg": "none", "typ": "JWT"}, claims, None),
        "hs-rs-confusion": lambda: _unsigned(
            {"alg": "HS256", "typ": "JWT"}, claims, public_pem.encode()
        ),
        "forged-signature": lambda: jwt.encode(claims, stranger, algorithm="RS256"),
        "expired": lambda: jwt.encode(
            {**claims, "exp": int((now - timedelta(minutes=5)).timestamp())},
            private,
            algorithm="RS256",
        ),
        "not-yet-valid": lambda: jwt.encode(
            {**claims, "nbf": int((now + timedelta(minutes=5)).timestamp())},
            private,
            algorithm="RS256",
        ),
        "wrong-audience": lambda: jwt.encode(
            {**claims, "aud": "another-api"}, private, algorithm="RS256"
        ),
        "wrong-issuer": lambda: jwt.encode(
            {**claims, "iss": "https://evil.example"}, private, algorithm="RS256"
        ),
        "oversized": lambda: jwt.encode(
            {**claims, "pad": "x" * 20_000}, private, algorithm="RS256"
        ),
    }
    with TestClient(app=create_app(settings, archived_day[0])) as client:
        good = jwt.encode(claims, private, algorithm="RS256")
        assert _links(client, archived_day[1], good).status_code == 200
        response = _links(client, archived_day[1], tokens[attack]())
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "url" not in response.text
    assert _audit_rows(engine)[-1].outcome == response.json()["code"]


def test_a_tenant_only_ever_sees_its_own_day(
    client: TestClient, archived_day: tuple[dg.DagsterInstance, date]
) -> None:
    # globex is enabled but its day was never archived: nothing of acme's may show up.
    body = _links(client, archived_day[1], _token(tenant="globex")).json()
    assert body["tenantId"] == "globex"
    assert {h["status"] for h in body["hours"]} == {"pending"}
    assert "acme" not in json.dumps(body)


def _edit_link(path: str, edit: Callable[[dict[str, object]], None]) -> str:
    prefix, token = path.rsplit("/", 1)
    payload, _, mac = token.partition(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    edit(claims)
    raw = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
    return f"{prefix}/{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}.{mac}"


def test_an_edited_link_never_reaches_another_tenant_or_hour(
    client: TestClient, archived_day: tuple[dg.DagsterInstance, date], engine: sa.Engine
) -> None:
    path = _path(_links(client, archived_day[1], _token()).json()["hours"][3]["url"])
    other_hour = archived_day[1].isoformat() + "T04"
    edits: list[Callable[[dict[str, object]], None]] = [
        lambda c: c.update(t="globex"),
        lambda c: c.update(h=other_hour),
        lambda c: c.update(o=str(c["o"]).replace("/03.zip", "/04.zip")),
        lambda c: c.update(o=str(c["o"]).replace("acme", "globex"), t="globex"),
        lambda c: c.update(exp=int(c["exp"]) + 86_400),  # type: ignore[call-overload]
        lambda c: c.update(s="someone-else"),
    ]
    for edit in edits:
        response = client.get(_edit_link(path, edit), follow_redirects=False)
        assert response.status_code == 401
        assert response.json()["code"] == "link_tampered"
    downloads = [r for r in _audit_rows(engine) if r.action == "download"]
    assert [r.tenant_id for r in downloads] == [None] * len(edits)


def test_retention_makes_hours_expired_and_deleted_archives_gone(
    client: TestClient,
    archived_day: tuple[dg.DagsterInstance, date],
    engine: sa.Engine,
    s3_client: Minio,
    recordings_env: dict[str, str],
) -> None:
    day = archived_day[1]
    url = _links(client, day, _token()).json()["hours"][5]["url"]
    # A day beyond the retention (1 day: yesterday is kept, the day before is not).
    with session_scope(engine) as session:
        set_recording_settings(session, "acme", changed_by="test", retention_days=1)
    older = _links(client, day - timedelta(days=1), _token()).json()
    assert {h["status"] for h in older["hours"]} == {"expired"}
    assert all("url" not in h for h in older["hours"])
    assert {h["status"] for h in _links(client, day, _token()).json()["hours"]} == {"available"}
    # The archive is deleted (as the retention job will): its still-valid link answers 410.
    s3_client.remove_object(
        recordings_env["RECORDINGS_ARCHIVE_BUCKET"], archive_key("acme", day_hours(day)[5])
    )
    response = client.get(_path(url), follow_redirects=False)
    assert response.status_code == 410
    assert response.json()["code"] == "archive_gone"


def test_a_link_stops_working_when_the_feature_is_disabled(
    client: TestClient, archived_day: tuple[dg.DagsterInstance, date], engine: sa.Engine
) -> None:
    url = _links(client, archived_day[1], _token()).json()["hours"][2]["url"]
    with session_scope(engine) as session:
        set_recording_settings(session, "acme", changed_by="host", enabled=False)
    response = client.get(_path(url), follow_redirects=False)
    assert response.status_code == 403
    assert response.json()["code"] == "feature_disabled"
    assert _links(client, archived_day[1], _token()).status_code == 403
    assert [r.outcome for r in _audit_rows(engine)][-2:] == ["feature_disabled"] * 2
    # Nothing was counted against the limit.
    assert "granted" not in [r.outcome for r in _audit_rows(engine)]


def test_an_hour_whose_run_failed_is_failed_until_a_retry_is_coming(
    client: TestClient,
    archived_day: tuple[dg.DagsterInstance, date],
    engine: sa.Engine,
    recordings_env: dict[str, str],
) -> None:
    instance, day = archived_day
    failing_hour = day_hours(day)[9]
    register_unreadable_source(
        engine, "globex", failing_hour, recordings_env["RECORDINGS_SOURCE_BUCKET"]
    )
    (request,) = nightly_run_requests(instance, ["globex"], day)
    with dg.execute_job(
        run_request_job(request),
        instance=instance,
        tags=request.tags,
        raise_on_error=False,
    ) as result:
        assert not result.success
        run_id = result.run_id
    hours = _links(client, day, _token(tenant="globex")).json()["hours"]
    assert hours[9]["status"] == "failed"
    assert [h["status"] for h in hours].count("available") == 23
    # While the daemon is going to retry the run, the hour is pending, not failed.
    instance.add_run_tags(run_id, {"dagster/will_retry": "true"})
    hours = _links(client, day, _token(tenant="globex")).json()["hours"]
    assert hours[9]["status"] == "pending"


def test_an_hour_archived_before_the_shards_is_listed_and_downloadable(
    client: TestClient,
    archived_day: tuple[dg.DagsterInstance, date],
    recordings_env: dict[str, str],
    s3_client: Minio,
) -> None:
    """An archive recorded under the single asset of before the shards (an upgrade) is served
    like the others until it expires."""
    instance, day = archived_day
    hour = day_hours(day)[2]
    key = archive_key("globex", hour)
    content = b"PK archived before the upgrade"
    s3_client.put_object(
        recordings_env["RECORDINGS_ARCHIVE_BUCKET"], key, io.BytesIO(content), len(content)
    )
    sha256 = hashlib.sha256(content).hexdigest()
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            LEGACY_ARCHIVE_ASSET_KEY,
            partition=archive_partition_key("globex", hour),
            metadata={
                "object_key": key,
                "size_bytes": len(content),
                "sha256": sha256,
                "recording_count": 1,
                "conversation_count": 1,
                "failed_recording_count": 0,
            },
        )
    )
    hours = _links(client, day, _token(tenant="globex")).json()["hours"]
    assert [h["status"] for h in hours].count("available") == 1
    assert hours[2]["status"] == "available" and hours[2]["sha256"] == sha256
    download = client.get(hours[2]["url"].removeprefix("http://testserver"), follow_redirects=False)
    assert download.status_code == 307
    assert httpx.get(download.headers["location"]).content == content


def test_the_openapi_schema_documents_every_operation_and_error(client: TestClient) -> None:
    schema = client.get("/schema/openapi.json").json()
    assert schema["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    operations = [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    ]
    assert len(operations) == 23
    for path, method, operation in operations:
        where = f"{method.upper()} {path}"
        assert operation.get("summary") and operation.get("operationId"), where
        for parameter in operation.get("parameters", []):
            assert parameter.get("description"), f"{where}: {parameter['name']}"
        if path.startswith("/health"):
            continue
        responses = operation["responses"]
        assert "503" in responses, where
        for status, response in responses.items():
            assert response.get("description"), f"{where} {status}"
            if int(status) >= 400:
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorBody"), f"{where} {status}"
        protected = "downloads" not in path
        assert bool(operation.get("security")) == protected, where
        if protected:
            assert {"401", "403"} <= set(responses), where


def test_expired_links_and_retired_keys_are_401_and_rotation_keeps_old_links(
    archived_day: tuple[dg.DagsterInstance, date], api_settings: Callable[..., ApiSettings]
) -> None:
    instance, day = archived_day
    old_key, new_key = secrets.token_bytes(32), secrets.token_bytes(32)
    hour = day_hours(day)[6]

    def link(signer: LinkSigner, expires_in: timedelta) -> str:
        token = signer.sign(tenant_id="acme", hour=hour, expires_at=datetime.now(UTC) + expires_in)
        return f"{BASE}/downloads/{token}"

    before = LinkSigner({"k1": old_key}, "k1")
    rotating = LinkSigner({"k1": old_key, "k2": new_key}, "k2")
    after = LinkSigner({"k2": new_key}, "k2")
    with TestClient(app=create_app(api_settings(link_signer=rotating), instance)) as client:
        assert (
            client.get(link(before, timedelta(hours=1)), follow_redirects=False).status_code == 307
        )
        expired = client.get(link(rotating, timedelta(seconds=-1)), follow_redirects=False)
        assert (expired.status_code, expired.json()["code"]) == (401, "link_expired")
    with TestClient(app=create_app(api_settings(link_signer=after), instance)) as client:
        retired = client.get(link(before, timedelta(hours=1)), follow_redirects=False)
        assert (retired.status_code, retired.json()["code"]) == (401, "link_unknown_key")
        assert (
            client.get(link(after, timedelta(hours=1)), follow_redirects=False).status_code == 307
        )
