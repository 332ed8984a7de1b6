"""Our signatures must verify with the Standard Webhooks reference library, since tenants
verify with whatever library their language has; and our own `verify` (the one the client
copies) must refuse what the reference refuses: a tampered body, a wrong secret, a replay."""

import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as ReferenceVerificationError

from recordings.webhooks import signing
from recordings.webhooks.signing import derive_secret, sign
from recordings_client.webhooks import WebhookVerificationError
from recordings_client.webhooks import verify_webhook as verify

KEY = bytes(range(32))
BODY = json.dumps({"type": "day.ready", "data": {"tenant": "acme", "day": "2026-11-30"}}).encode()


@pytest.fixture
def secret() -> str:
    return derive_secret(KEY, signing.new_salt())


def test_our_headers_verify_with_the_reference_library(secret: str) -> None:
    headers = sign([secret], signing.new_message_id(), int(time.time()), BODY)
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    verify(secret, headers, BODY)


def test_our_signature_is_the_reference_signature(secret: str) -> None:
    message_id, timestamp = "msg_fixed", 1764547200
    reference = Webhook(secret).sign(
        message_id, datetime.fromtimestamp(timestamp, tz=UTC), BODY.decode()
    )
    assert signing.signature(secret, message_id, timestamp, BODY) == reference


def test_a_derived_secret_is_the_specs_format_and_stable_per_salt() -> None:
    salt = signing.new_salt()
    secret = derive_secret(KEY, salt)
    assert secret.startswith("whsec_") and len(signing._secret_bytes(secret)) == 32
    assert derive_secret(KEY, salt) == secret
    assert derive_secret(KEY, signing.new_salt()) != secret
    assert derive_secret(bytes(32), salt) != secret


def test_a_tampered_body_fails(secret: str) -> None:
    headers = sign([secret], "msg_1", int(time.time()), BODY)
    tampered = BODY.replace(b"acme", b"evil")
    with pytest.raises(WebhookVerificationError, match="no signature matches"):
        verify(secret, headers, tampered)
    with pytest.raises(ReferenceVerificationError):
        Webhook(secret).verify(tampered, headers)


def test_a_wrong_secret_fails(secret: str) -> None:
    headers = sign([secret], "msg_1", int(time.time()), BODY)
    other = derive_secret(KEY, signing.new_salt())
    with pytest.raises(WebhookVerificationError, match="no signature matches"):
        verify(other, headers, BODY)
    with pytest.raises(ReferenceVerificationError):
        Webhook(other).verify(BODY, headers)


def test_an_old_or_future_timestamp_fails_even_when_signed(secret: str) -> None:
    now = int(time.time())
    for timestamp in (now - 10 * 60, now + 10 * 60):
        headers = sign([secret], "msg_1", timestamp, BODY)
        with pytest.raises(WebhookVerificationError, match="tolerance"):
            verify(secret, headers, BODY, now=now)
        with pytest.raises(ReferenceVerificationError):
            Webhook(secret).verify(BODY, headers)
    verify(secret, sign([secret], "msg_1", now - 60, BODY), BODY, now=now)


def test_missing_or_malformed_headers_fail(secret: str) -> None:
    headers = sign([secret], "msg_1", int(time.time()), BODY)
    for name in headers:
        with pytest.raises(WebhookVerificationError, match="missing"):
            verify(secret, {k: v for k, v in headers.items() if k != name}, BODY)
    with pytest.raises(WebhookVerificationError, match="not an integer"):
        verify(secret, {**headers, "webhook-timestamp": "soon"}, BODY)


def test_during_a_rotation_either_secret_verifies(secret: str) -> None:
    previous = derive_secret(KEY, signing.new_salt())
    headers = sign([secret, previous], "msg_1", int(time.time()), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for either in (secret, previous):
        verify(either, headers, BODY)
        assert Webhook(either).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        verify(derive_secret(KEY, signing.new_salt()), headers, BODY)


def test_header_names_are_matched_whatever_their_case(secret: str) -> None:
    headers = sign([secret], "msg_1", int(time.time()), BODY)
    verify(secret, {name.title(): value for name, value in headers.items()}, BODY)
