"""Attacks on a real signed download link, over HTTP, against a really archived day.

Edited fields, forged and retired keys, expiry and the rate limit are covered in
tests/api/test_day_links.py; here every single character of a real link is changed, and a
link that worked is replayed after it expired. Each time the audit log must say exactly what
happened, and nothing else may change.
"""

import string
from datetime import timedelta
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from recordings.keys import archive_key, day_hours
from recordings_api.settings import ApiSettings
from tests.security.conftest import (
    RECORDED_HOUR,
    ArchivedWorld,
    ClockedLinkSigner,
    audit_rows,
    day_links,
    download,
    link_path,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.resilience]

BASE64URL = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
REFUSED_LINK_CODES = {"link_malformed", "link_tampered", "link_unknown_key"}


def _variants(token: str) -> list[str]:
    """Every character changed five ways: its base64 value XOR 1, 2 and 32 (the low bits are
    the ones a segment's last character leaves unused) and its ASCII code XOR 0x01 and 0x20
    (percent-encoded when that leaves the URL-safe alphabet)."""
    found: list[str] = []
    for index, char in enumerate(token):
        replacements = [chr(ord(char) ^ 0x01), chr(ord(char) ^ 0x20)]
        if char in BASE64URL:
            value = BASE64URL.index(char)
            replacements += [BASE64URL[value ^ bit] for bit in (1, 2, 32)]
        found.extend(
            token[:index] + quote(replacement, safe="") + token[index + 1 :]
            for replacement in dict.fromkeys(replacements)
            if replacement != char
        )
    return found


def test_every_changed_character_of_a_real_link_is_refused_and_the_link_still_works(
    world_client: TestClient, archived_world: ArchivedWorld, world_engine: sa.Engine
) -> None:
    hour = RECORDED_HOUR["acme"]
    path = link_path(day_links(world_client, archived_world.day, "acme")[hour]["url"])
    prefix, token = path.rsplit("/", 1)
    variants = _variants(token)
    assert len(variants) >= 4 * len(token)
    before = audit_rows(world_engine)

    outcomes: dict[int, int] = {}
    for variant in variants:
        response = download(world_client, f"{prefix}/{variant}")
        outcomes[response.status_code] = outcomes.get(response.status_code, 0) + 1
        assert response.status_code in {400, 401, 404}, (variant, response.text)
        if response.status_code == 401:
            assert response.json()["code"] in REFUSED_LINK_CODES, variant
    assert outcomes.get(401, 0) >= 4 * len(token)

    after = audit_rows(world_engine)[len(before) :]
    # Every refused link is audited, without a tenant (it proves none), and nothing else.
    assert len(after) == outcomes[401]
    assert {(r.action, r.tenant_id, r.status_code) for r in after} == {("download", None, 401)}
    assert {r.outcome for r in after} <= REFUSED_LINK_CODES
    # The genuine link was never spent by its variants, and still works.
    response = download(world_client, path)
    assert response.status_code == 307, response.text
    granted = audit_rows(world_engine)[-1]
    assert (granted.tenant_id, granted.outcome) == ("acme", "granted")
    assert granted.object_key == archive_key("acme", day_hours(archived_world.day)[hour])


def test_a_link_replayed_after_its_expiry_is_401_and_spends_nothing(
    world_client: TestClient,
    world_settings: ApiSettings,
    archived_world: ArchivedWorld,
    world_engine: sa.Engine,
) -> None:
    signer = world_settings.link_signer
    assert isinstance(signer, ClockedLinkSigner)
    path = link_path(day_links(world_client, archived_world.day, "acme")[2]["url"])
    assert download(world_client, path).status_code == 307
    signer.ahead = world_settings.link_ttl - timedelta(minutes=1)  # a minute before it expires
    assert download(world_client, path).status_code == 307
    signer.ahead = world_settings.link_ttl + timedelta(seconds=1)
    for _ in range(2):
        replay = download(world_client, path)
        assert replay.status_code == 401
        assert replay.json()["code"] == "link_expired"
        assert "expired at" in replay.json()["detail"]

    rows = [r for r in audit_rows(world_engine) if r.action == "download"]
    assert [(r.tenant_id, r.outcome, r.status_code) for r in rows] == [
        ("acme", "granted", 307),
        ("acme", "granted", 307),
        (None, "link_expired", 401),
        (None, "link_expired", 401),
    ]
