"""Signed download links: the API's own, tenant-bound, time-limited links to one hourly archive.

S3 presigned URLs can neither answer 401 when expired (S3 says 403) nor count downloads, so the
link handed to tenants points at our API, which checks it, counts and audits the download, and
only then redirects to a short-lived presigned URL. A link is

    base64url(payload JSON) "." base64url(HMAC-SHA256(key, payload))

with the payload naming the key id (keys rotate: old links verify while their key is still
configured), the tenant, the hour, the object key, the expiry, and the client the link was
issued to (the token subject of the listing), so that a download is attributable to a client
even though the link itself needs no bearer token. Changing any byte of the
payload breaks the MAC; the verifier also re-derives the archive key from tenant and hour, so a
payload is only good for the one object it names.
"""

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from recordings.keys import InvalidIdentifierError, archive_key, hour_start, validate_tenant_id

LINK_VERSION = 1
MIN_SECRET_BYTES = 32
MAX_SUBJECT_CHARS = 200
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class LinkError(ValueError):
    """A link that must not be honoured; `reason` is stable, the message is for people."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # malformed | tampered | unknown_key | expired | wrong_object


@dataclass(frozen=True)
class DownloadLink:
    """What a valid link grants: one tenant's one hourly archive until `expires_at`."""

    tenant_id: str
    hour: datetime
    object_key: str
    expires_at: datetime
    key_id: str
    issued_to: str | None = None  # the token subject that listed the link


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def parse_link_keys(spec: str) -> dict[str, bytes]:
    """Parse `kid:base64secret[,kid:base64secret...]` (the RECORDINGS_LINK_KEYS format)."""
    keys: dict[str, bytes] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key_id, sep, encoded = item.partition(":")
        if not sep or not _KEY_ID.fullmatch(key_id):
            raise ValueError(
                f"link key {key_id!r} is malformed: use kid:base64secret, kid of 1-32 letters, "
                "digits, '-' or '_'"
            )
        try:
            secret = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueError(f"link key {key_id!r}: the secret is not valid base64") from None
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(
                f"link key {key_id!r} is {len(secret)} bytes; use at least {MIN_SECRET_BYTES} "
                "random bytes (e.g. `openssl rand -base64 32`)"
            )
        if key_id in keys:
            raise ValueError(f"link key {key_id!r} is listed twice")
        keys[key_id] = secret
    if not keys:
        raise ValueError("no link keys configured: set RECORDINGS_LINK_KEYS=kid:base64secret")
    return keys


class LinkSigner:
    """Signs with the active key; verifies with any configured key (rotation)."""

    def __init__(self, keys: Mapping[str, bytes], active_key_id: str) -> None:
        if active_key_id not in keys:
            raise ValueError(f"active link key {active_key_id!r} is not among the configured keys")
        self._keys = dict(keys)
        self._active = active_key_id

    def _mac(self, key_id: str, payload: bytes) -> bytes:
        return hmac.new(self._keys[key_id], payload, hashlib.sha256).digest()

    def sign(
        self,
        *,
        tenant_id: str,
        hour: datetime,
        expires_at: datetime,
        issued_to: str | None = None,
    ) -> str:
        """A link to `tenant_id`'s archive of `hour`, valid until `expires_at`."""
        start = hour_start(hour)
        payload = json.dumps(
            {
                "v": LINK_VERSION,
                "s": (issued_to or "")[:MAX_SUBJECT_CHARS],
                "kid": self._active,
                "t": validate_tenant_id(tenant_id),
                "h": start.strftime("%Y-%m-%dT%H"),
                "o": archive_key(tenant_id, start),
                "exp": int(expires_at.timestamp()),
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode("utf-8")
        return f"{_b64encode(payload)}.{_b64encode(self._mac(self._active, payload))}"

    def verify(self, token: str, *, now: datetime | None = None) -> DownloadLink:
        """The grant of a valid link; `LinkError` for anything else (checked in that order:
        shape, key, signature, contents, expiry), so an expired forgery reads as tampered."""
        payload_text, sep, mac_text = token.partition(".")
        if not sep or not payload_text or not mac_text:
            raise LinkError("malformed", "the download link is malformed")
        try:
            payload = _b64decode(payload_text)
            mac = _b64decode(mac_text)
            claims = json.loads(payload)
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise LinkError("malformed", "the download link is malformed") from None
        # Base64 leaves the low bits of a segment's last character unused and decoding skips
        # characters outside the alphabet, so several strings decode to the same bytes; only
        # the one encoding we issue is accepted, so that changing any character of a link
        # refuses it (a link is a credential, and its copies must not be told apart by luck).
        if _b64encode(payload) != payload_text or _b64encode(mac) != mac_text:
            raise LinkError("malformed", "the download link is malformed")
        if not isinstance(claims, dict):
            raise LinkError("malformed", "the download link is malformed")
        key_id = claims.get("kid")
        if not isinstance(key_id, str) or key_id not in self._keys:
            raise LinkError(
                "unknown_key", "the download link was signed with a key that is no longer valid"
            )
        if not hmac.compare_digest(mac, self._mac(key_id, payload)):
            raise LinkError("tampered", "the download link's signature does not match")
        try:
            tenant_id = validate_tenant_id(str(claims["t"]))
            hour = datetime.strptime(str(claims["h"]), "%Y-%m-%dT%H").replace(tzinfo=UTC)
            expires_at = datetime.fromtimestamp(int(claims["exp"]), tz=UTC)
            object_key = str(claims["o"])
            version = claims["v"]
            issued_to = str(claims.get("s") or "") or None
        except (KeyError, TypeError, ValueError, InvalidIdentifierError):
            raise LinkError("malformed", "the download link is malformed") from None
        if version != LINK_VERSION:
            raise LinkError("malformed", f"download link version {version!r} is not supported")
        if object_key != archive_key(tenant_id, hour):
            raise LinkError("wrong_object", "the download link does not match its archive")
        if (now or datetime.now(UTC)) >= expires_at:
            raise LinkError("expired", f"the download link expired at {expires_at.isoformat()}")
        return DownloadLink(tenant_id, hour, object_key, expires_at, key_id, issued_to)
