"""Signed download links: bound to tenant, hour and object, expiring, tamper-evident, rotatable.

A link that could be edited to reach another tenant's archive would be a compliance breach, so
every kind of edit is tried here.
"""

import base64
import io
import json
import logging
import secrets
from datetime import UTC, datetime, timedelta

import pytest

from recordings.keys import archive_key
from recordings.links import LinkError, LinkSigner, parse_link_keys

HOUR = datetime(2025, 12, 12, 13, tzinfo=UTC)
NOW = datetime(2025, 12, 13, 9, tzinfo=UTC)
KEY_A = secrets.token_bytes(32)
KEY_B = secrets.token_bytes(32)


def _signer(active: str = "a", **keys: bytes) -> LinkSigner:
    return LinkSigner(keys or {"a": KEY_A}, active)


def _link(signer: LinkSigner | None = None, tenant: str = "acme") -> str:
    return (signer or _signer()).sign(
        tenant_id=tenant, hour=HOUR, expires_at=NOW + timedelta(hours=24)
    )


def _edit_payload(token: str, **changes: object) -> str:
    payload_text, _, mac = token.partition(".")
    payload = json.loads(base64.urlsafe_b64decode(payload_text + "=" * (-len(payload_text) % 4)))
    payload.update(changes)
    encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{encoded}.{mac}"


def test_a_valid_link_grants_exactly_its_tenant_hour_and_object() -> None:
    grant = _signer().verify(_link(), now=NOW)
    assert grant.tenant_id == "acme"
    assert grant.hour == HOUR
    assert grant.object_key == archive_key("acme", HOUR)
    assert grant.expires_at == NOW + timedelta(hours=24)
    assert grant.key_id == "a"


def test_links_expire() -> None:
    token = _link()
    with pytest.raises(LinkError) as error:
        _signer().verify(token, now=NOW + timedelta(hours=24))
    assert error.value.reason == "expired"


@pytest.mark.parametrize(
    "changes",
    [
        {"t": "globex"},
        {"h": "2025-12-12T14"},
        {"o": archive_key("globex", HOUR)},
        {"exp": int((NOW + timedelta(days=365)).timestamp())},
    ],
)
def test_editing_any_field_breaks_the_signature(changes: dict[str, object]) -> None:
    with pytest.raises(LinkError) as error:
        _signer().verify(_edit_payload(_link(), **changes), now=NOW)
    assert error.value.reason == "tampered"


def test_another_tenants_link_cannot_be_built_from_ours() -> None:
    ours, theirs = _link(tenant="acme"), _link(tenant="globex")
    spliced = f"{theirs.partition('.')[0]}.{ours.partition('.')[2]}"
    with pytest.raises(LinkError, match="signature"):
        _signer().verify(spliced, now=NOW)


@pytest.mark.parametrize("token", ["", "abc", ".", "a.b", "!!!.???", "e30.e30"])
def test_garbage_is_malformed_or_tampered(token: str) -> None:
    with pytest.raises(LinkError) as error:
        _signer().verify(token, now=NOW)
    assert error.value.reason in {"malformed", "unknown_key"}


def test_rotation_old_links_verify_while_their_key_is_configured() -> None:
    old = _link(_signer("a", a=KEY_A))
    rotated = _signer("b", a=KEY_A, b=KEY_B)
    assert rotated.verify(old, now=NOW).key_id == "a"
    assert rotated.verify(_link(rotated), now=NOW).key_id == "b"
    with pytest.raises(LinkError) as error:
        _signer("b", b=KEY_B).verify(old, now=NOW)
    assert error.value.reason == "unknown_key"


def test_a_link_signed_with_another_secret_under_the_same_key_id_is_rejected() -> None:
    forged = _link(_signer("a", a=secrets.token_bytes(32)))
    with pytest.raises(LinkError) as error:
        _signer().verify(forged, now=NOW)
    assert error.value.reason == "tampered"


def test_link_keys_parse_and_refuse_weak_or_malformed_secrets() -> None:
    good = base64.b64encode(KEY_A).decode()
    assert parse_link_keys(f"k1:{good}, k2:{good}") == {"k1": KEY_A, "k2": KEY_A}
    for spec, message in [
        ("", "no link keys"),
        (f"k1:{base64.b64encode(b'short').decode()}", "at least 32"),
        ("k1:not base64!", "not valid base64"),
        (f"bad id:{good}", "malformed"),
        (f"k1:{good},k1:{good}", "twice"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_link_keys(spec)
    with pytest.raises(ValueError, match="active link key"):
        LinkSigner({"k1": KEY_A}, "k2")


def test_download_links_are_redacted_from_access_logs() -> None:
    from recordings_api.redaction import install

    link = LinkSigner({"k1": KEY_A}, "k1").sign(
        tenant_id="acme", hour=HOUR, expires_at=NOW + timedelta(hours=24)
    )
    install()
    logger = logging.getLogger("uvicorn.access")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        logger.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            f"/api/v1/daily-conversation-audio-recordings/downloads/{link}",
            "1.1",
            307,
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    written = stream.getvalue()
    assert link not in written
    assert f"/downloads/{link[:6]}… HTTP/1.1" in written
