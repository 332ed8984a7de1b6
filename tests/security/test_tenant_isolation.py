"""Tenant isolation: tenant A's credentials used on or with tenant B's data, endpoint by endpoint.

Three tenants' days are really archived (tests/security/conftest.py). For every tenant-scoped
endpoint (the day's links, the download, the tenant's audit log) and the host endpoints a
tenant might try, acme (A) attacks globex (B): B's day, B's links, B's audit, links cut from
B's listing. Whatever A does, A receives nothing of B's, gets no link to B's objects, spends
none of B's downloads and writes nothing into B's audit log; A's attempts are audited under A
or under no tenant.
"""

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from recordings.keys import day_hours, tenant_archive_prefix
from tests.security.conftest import (
    DOWNLOAD_LIMIT,
    DOWNLOADS,
    HOST_AUDIT,
    LINKS,
    RECORDED_HOUR,
    TENANT_AUDIT,
    ArchivedWorld,
    AuditRow,
    audit_rows,
    bearer,
    day_links,
    download,
    link_path,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.resilience]

A, B = "acme", "globex"
HOST_SETTINGS = f"/api/v1/host/tenants/{B}/daily-conversation-audio-recordings/settings"


def _claims(path: str) -> dict[str, object]:
    payload = path.rsplit("/", 1)[1].partition(".")[0]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _encode(claims: dict[str, object]) -> str:
    raw = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class Scene:
    client: TestClient
    world: ArchivedWorld
    a_link: str  # a path of A's own listing (A's recorded hour)
    b_link: str  # a path of B's listing (B's recorded hour), as B's client received it


def _b_day(scene: Scene) -> list[httpx.Response]:
    """A asks for the day, naming B every way a request could."""
    params = {"utcDay": scene.world.day.isoformat(), "tenantId": B, "tenant_id": B}
    headers = {**bearer(A), "X-Tenant-Id": B, "Tenant-Id": B}
    return [scene.client.get(LINKS, params=params, headers=headers)]


def _b_audit(scene: Scene) -> list[httpx.Response]:
    params = {"tenantId": B, "tenant_id": B}
    return [
        scene.client.get(TENANT_AUDIT, params=params, headers={**bearer(A), "X-Tenant-Id": B}),
        scene.client.get(HOST_AUDIT, params={"tenantId": B}, headers=bearer(A)),
    ]


def _b_settings(scene: Scene) -> list[httpx.Response]:
    return [
        scene.client.get(HOST_SETTINGS, headers=bearer(A)),
        scene.client.put(HOST_SETTINGS, json={"enabled": False}, headers=bearer(A)),
        scene.client.get(f"{HOST_SETTINGS}/changes", headers=bearer(A)),
    ]


def _b_link_with_a_token(scene: Scene) -> list[httpx.Response]:
    return [download(scene.client, scene.b_link, bearer(A))]


def _b_link_reissued_to_a(scene: Scene) -> list[httpx.Response]:
    claims = _claims(scene.b_link)
    claims["s"] = f"client-of-{A}"
    mac = scene.b_link.rsplit(".", 1)[1]
    return [download(scene.client, f"{DOWNLOADS}/{_encode(claims)}.{mac}")]


def _b_payload_with_a_mac(scene: Scene) -> list[httpx.Response]:
    b_payload = scene.b_link.rsplit("/", 1)[1].partition(".")[0]
    a_mac = scene.a_link.rsplit(".", 1)[1]
    return [download(scene.client, f"{DOWNLOADS}/{b_payload}.{a_mac}", bearer(A))]


def _a_link_pointed_at_b(scene: Scene) -> list[httpx.Response]:
    mac = scene.a_link.rsplit(".", 1)[1]
    b_hour = f"{scene.world.day.isoformat()}T{RECORDED_HOUR[B]:02d}"
    edits: list[Callable[[dict[str, object]], None]] = [
        lambda c: c.update(t=B),
        lambda c: c.update(t=B, o=str(c["o"]).replace(f"/{A}/", f"/{B}/")),
        lambda c: c.update(t=B, o=str(c["o"]).replace(f"/{A}/", f"/{B}/"), h=b_hour),
        lambda c: c.update(o=str(c["o"]).replace(f"/{A}/", f"/{A}/../{B}/")),
    ]
    responses = []
    for edit in edits:
        claims = _claims(scene.a_link)
        edit(claims)
        responses.append(download(scene.client, f"{DOWNLOADS}/{_encode(claims)}.{mac}"))
    return responses


def _b_link_cut_into_a_path(scene: Scene) -> list[httpx.Response]:
    """B's link glued onto A's, or onto a traversal out of A's download path."""
    a_token, b_token = scene.a_link.rsplit("/", 1)[1], scene.b_link.rsplit("/", 1)[1]
    return [
        download(scene.client, f"{DOWNLOADS}/{a_token}/{b_token}", bearer(A)),
        download(scene.client, f"{DOWNLOADS}/{a_token}%2F..%2F{b_token}", bearer(A)),
        download(scene.client, f"{DOWNLOADS}/{a_token}{b_token}", bearer(A)),
    ]


ATTACKS: dict[str, tuple[Callable[[Scene], list[httpx.Response]], set[int]]] = {
    "b-day": (_b_day, {200}),
    "b-audit": (_b_audit, {200, 403}),
    "b-settings": (_b_settings, {403}),
    "b-link-with-a-token": (_b_link_with_a_token, {403}),
    "b-link-reissued-to-a": (_b_link_reissued_to_a, {401}),
    "b-payload-with-a-mac": (_b_payload_with_a_mac, {401}),
    "a-link-pointed-at-b": (_a_link_pointed_at_b, {401}),
    "b-link-cut-into-a-path": (_b_link_cut_into_a_path, {401, 404}),
}


def _of(rows: list[AuditRow], tenant: str) -> list[AuditRow]:
    return [r for r in rows if r.tenant_id == tenant]


def _granted(rows: list[AuditRow], tenant: str) -> int:
    return sum(1 for r in _of(rows, tenant) if r.outcome == "granted")


@pytest.mark.parametrize("attack", ATTACKS, ids=list(ATTACKS))
def test_tenant_a_never_reaches_tenant_bs_data(
    world_client: TestClient,
    archived_world: ArchivedWorld,
    world_engine: sa.Engine,
    attack: str,
) -> None:
    a_listing = day_links(world_client, archived_world.day, A)
    b_listing = day_links(world_client, archived_world.day, B)
    scene = Scene(
        world_client,
        archived_world,
        link_path(a_listing[RECORDED_HOUR[A]]["url"]),
        link_path(b_listing[RECORDED_HOUR[B]]["url"]),
    )
    before = audit_rows(world_engine)

    run, statuses = ATTACKS[attack]
    responses = run(scene)
    for response in responses:
        assert response.status_code in statuses, (response.request.url, response.text)
        # Nothing of B's comes back: not its name, not its objects, not a link to them.
        assert B not in response.text and tenant_archive_prefix(B) not in response.text
        assert "location" not in response.headers
        if response.status_code == 200 and "hours" in response.json():
            body = response.json()
            assert body["tenantId"] == A
            for hour in body["hours"]:
                if "url" in hour:
                    claims = _claims(link_path(hour["url"]))
                    assert claims["t"] == A
                    assert str(claims["o"]).startswith(tenant_archive_prefix(A))
        if response.status_code == 200 and "entries" in response.json():
            assert {e.get("tenantId") for e in response.json()["entries"]} == {A}

    after = audit_rows(world_engine)
    added = after[len(before) :]
    # B's audit log is exactly as it was; A's attempts are A's or no tenant's.
    assert _of(after, B) == _of(before, B)
    assert {r.tenant_id for r in added} <= {A, None}
    for row in added:
        assert row.object_key is None or row.object_key.startswith(tenant_archive_prefix(A))
    assert _granted(after, A) == _granted(before, A)
    # B's downloads are untouched: all of them are still there to take.
    assert _granted(after, B) == 0
    b_codes = [download(world_client, scene.b_link).status_code for _ in range(DOWNLOAD_LIMIT + 1)]
    assert b_codes == [307] * DOWNLOAD_LIMIT + [429]


def test_a_spending_its_own_downloads_leaves_every_other_tenants_untouched(
    world_client: TestClient, archived_world: ArchivedWorld, world_engine: sa.Engine
) -> None:
    links = {
        tenant: link_path(day_links(world_client, archived_world.day, tenant)[hour]["url"])
        for tenant, hour in RECORDED_HOUR.items()
    }
    a_codes = [download(world_client, links[A]).status_code for _ in range(DOWNLOAD_LIMIT + 2)]
    assert a_codes == [307] * DOWNLOAD_LIMIT + [429, 429]
    refused = download(world_client, links[A])
    assert refused.json()["code"] == "rate_limited" and int(refused.headers["retry-after"]) > 0
    for tenant in set(RECORDED_HOUR) - {A}:
        codes = [download(world_client, links[tenant]).status_code for _ in range(DOWNLOAD_LIMIT)]
        assert codes == [307] * DOWNLOAD_LIMIT, tenant
    rows = audit_rows(world_engine)
    assert {t: _granted(rows, t) for t in RECORDED_HOUR} == dict.fromkeys(
        RECORDED_HOUR, DOWNLOAD_LIMIT
    )
    assert [r.outcome for r in _of(rows, A) if r.action == "download"].count("rate_limited") == 3
    for tenant in RECORDED_HOUR:
        keys = {r.object_key for r in _of(rows, tenant) if r.action == "download"}
        hour = day_hours(archived_world.day)[RECORDED_HOUR[tenant]]
        assert keys == {f"{tenant_archive_prefix(tenant)}{hour:%Y/%m/%d/%H}.zip"}
