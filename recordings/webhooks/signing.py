"""Standard Webhooks signatures (https://www.standardwebhooks.com/), and tenants' secrets.

An event is signed over ``{webhook-id}.{webhook-timestamp}.{body}`` with HMAC-SHA256; the
``webhook-signature`` header carries ``v1,<base64>`` once per secret that signs (during a
rotation, the new and the previous secret), separated by spaces. Secrets are ``whsec_`` and the
base64 of 32 bytes, the spec's format, so the tenant can verify with any Standard Webhooks
library as well as with ours (``recordings_client.verify_webhook``).

A tenant's secret is derived, not stored: HMAC-SHA256 of a random per-endpoint salt under the
service's webhook key (``RECORDINGS_WEBHOOK_KEY``). The database holds only the salt, so a copy
of it cannot sign an event; the key never leaves the API and the Dagster code location.
"""

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 (the spec's prefix, not a secret)
SALT_BYTES = 32
MIN_KEY_BYTES = 32
_DERIVATION_LABEL = b"recordings webhook secret\x00"


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def new_message_id() -> str:
    """A `webhook-id`: unique per event, the same on every retry of it."""
    return "msg_" + secrets.token_urlsafe(24)


def parse_webhook_key(text: str) -> bytes:
    """The service's webhook key from its base64 text, refused below 32 bytes."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise ValueError(
            "RECORDINGS_WEBHOOK_KEY is not base64: use e.g. $(openssl rand -base64 32)"
        ) from None
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"RECORDINGS_WEBHOOK_KEY has {len(key)} bytes, at least {MIN_KEY_BYTES} are needed: "
            "use e.g. $(openssl rand -base64 32)"
        )
    return key


def derive_secret(webhook_key: bytes, salt: bytes) -> str:
    """The tenant's signing secret for an endpoint's salt, in the spec's ``whsec_`` format."""
    digest = hmac.new(webhook_key, _DERIVATION_LABEL + salt, hashlib.sha256).digest()
    return SECRET_PREFIX + base64.b64encode(digest).decode()


def _secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of an event under one secret."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign(secrets_: Sequence[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for an event, signed by every secret given."""
    if not secrets_:
        raise ValueError("at least one secret must sign")
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            signature(secret, message_id, timestamp, body) for secret in secrets_
        ),
    }
