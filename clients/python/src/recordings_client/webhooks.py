"""Verify a webhook event the service posted, per Standard Webhooks
(https://www.standardwebhooks.com/): an HMAC-SHA256 over ``{webhook-id}.{webhook-timestamp}.
{body}`` under the tenant's ``whsec_`` secret, and a timestamp close to now against replays.

Verify the raw body, byte for byte, before parsing it: re-serialising JSON changes the bytes.
During a secret rotation the service signs with the new and the previous secret; either
verifies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

SECRET_PREFIX = "whsec_"  # noqa: S105 - the specification's prefix, not a secret
TOLERANCE_SECONDS = 5 * 60


class WebhookVerificationError(Exception):
    """The event did not verify; the message says why. Answer it with a 4xx and drop it."""


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> dict[str, Any]:
    """The event (``{"type", "timestamp", "data"}``) if its signature is the secret's and its
    timestamp within the tolerance; else WebhookVerificationError. ``headers`` may be any
    mapping of the request's headers (names in any case)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    message_id = lowered.get("webhook-id")
    timestamp_text = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not message_id or not timestamp_text or not signatures:
        raise WebhookVerificationError(
            "missing webhook-id, webhook-timestamp or webhook-signature header"
        )
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        raise WebhookVerificationError(
            f"webhook-timestamp {timestamp_text!r} is not an integer"
        ) from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise WebhookVerificationError(
            f"webhook-timestamp is {int(current - timestamp)} s away from now, beyond the "
            f"{tolerance_seconds} s tolerance: a replayed event, or a clock that is off"
        )
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError:
        raise WebhookVerificationError("the secret is not a whsec_ base64 secret") from None
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            try:
                event = json.loads(body)
            except ValueError:
                raise WebhookVerificationError("the signed body is not JSON") from None
            if not isinstance(event, dict):
                raise WebhookVerificationError("the signed body is not a JSON object")
            return event
    raise WebhookVerificationError("no signature matches the secret (wrong secret, or altered)")
