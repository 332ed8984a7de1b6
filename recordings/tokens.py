"""Bearer tokens (JWT): verification for the API, minting of development tokens for the CLI.

Only the configured algorithm is accepted, with the key of its family: a shared secret for HS256
(development), a public key for RS256 or ES256 (production). That closes both classic attacks:
`alg: none` is never in the allowed list, and an HS256 token "signed" with the public key of an
RS256 deployment fails the algorithm check before any key is used. Signature, expiry, not-before
and, when configured, issuer and audience are checked; the tenant and the permissions come from
configurable claims.

Production keys can also come from a JWKS document (the identity provider's published key
set, saved to a file): the token's `kid` header picks the key, and the key must belong to the
configured algorithm's family.
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from jwt.types import Options

from recordings.keys import InvalidIdentifierError, validate_tenant_id

MAX_TOKEN_BYTES = 8192  # far above any real access token; refuses parser-abuse payloads unread

READ_PERMISSION = "DailyConversationAudioRecordings.Read"
HOST_PERMISSION = "DailyConversationAudioRecordings.Admin"
# Registering a webhook decides where the service posts: more than reading, so its own permission.
WEBHOOK_PERMISSION = "DailyConversationAudioRecordings.Webhooks"
SUPPORTED_ALGORITHMS = ("HS256", "RS256", "ES256")


class TokenError(Exception):
    """A token that must be refused (HTTP 401); `code` is stable, the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class TokenSettings:
    """How tokens are verified; built from RECORDINGS_JWT_* variables by the API's settings."""

    algorithm: str
    key: str = ""  # HS256: the shared secret; RS256/ES256: the PEM public key
    jwks: Mapping[str, Any] = field(default_factory=dict)  # RS256/ES256: kid -> public key
    issuer: str | None = None
    audience: str | None = None
    tenant_claim: str = "tenant_id"
    permission_claims: tuple[str, ...] = ("permissions", "scope", "roles")
    read_permission: str = READ_PERMISSION
    host_permission: str = HOST_PERMISSION
    webhook_permission: str = WEBHOOK_PERMISSION
    leeway_seconds: int = 30

    def __post_init__(self) -> None:
        if self.algorithm not in SUPPORTED_ALGORITHMS:
            raise ValueError(
                f"JWT algorithm {self.algorithm!r} is not supported; use one of "
                f"{', '.join(SUPPORTED_ALGORITHMS)}"
            )
        if self.jwks:
            if self.algorithm == "HS256":
                raise ValueError("a JWKS holds public keys: use it with RS256 or ES256")
            return
        if not self.key:
            raise ValueError(
                "no JWT key configured (the HS256 secret, the public key PEM or a JWKS file)"
            )
        is_pem = self.key.lstrip().startswith("-----BEGIN")
        if self.algorithm == "HS256" and is_pem:
            raise ValueError("HS256 needs a shared secret, not a PEM key")
        if self.algorithm != "HS256" and not is_pem:
            raise ValueError(f"{self.algorithm} needs a PEM public key")
        if self.algorithm == "HS256" and len(self.key.encode()) < 32:
            raise ValueError("the HS256 secret must be at least 32 bytes")


@dataclass(frozen=True)
class Principal:
    """Who a verified token speaks for."""

    subject: str
    tenant_id: str | None
    permissions: frozenset[str] = field(default_factory=frozenset)

    def has(self, permission: str) -> bool:
        return permission in self.permissions


def _permissions(claims: dict[str, Any], names: Iterable[str]) -> frozenset[str]:
    found: set[str] = set()
    for name in names:
        value = claims.get(name)
        if isinstance(value, str):
            found.update(value.split())  # OAuth 2 `scope`: space-separated
        elif isinstance(value, list):
            found.update(item for item in value if isinstance(item, str))
    return frozenset(found)


def _is_tenant_id(value: str) -> bool:
    try:
        validate_tenant_id(value)
    except InvalidIdentifierError:
        return False
    return True


_JWKS_KEY_TYPES = {"RS256": "RSA", "ES256": "EC"}


def load_jwks(document: str, algorithm: str) -> dict[str, Any]:
    """The verification keys of a JWKS document (`{"keys": [...]}`) by `kid`, keeping only
    keys of `algorithm`'s family; a document without any is a configuration error."""
    try:
        keys = json.loads(document)["keys"]
    except (ValueError, KeyError, TypeError):
        raise ValueError('the JWKS is not a JSON object with a "keys" list') from None
    found: dict[str, Any] = {}
    for entry in keys if isinstance(keys, list) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") != _JWKS_KEY_TYPES.get(algorithm) or "kid" not in entry:
            continue
        if entry.get("alg", algorithm) != algorithm:
            continue
        try:
            found[str(entry["kid"])] = jwt.PyJWK(entry, algorithm).key
        except jwt.PyJWKError as exc:
            raise ValueError(f"JWKS key {entry['kid']!r} is unusable: {exc}") from None
    if not found:
        raise ValueError(f"the JWKS has no signing key with a kid for {algorithm}")
    return found


def _verification_key(token: str, settings: TokenSettings) -> Any:
    if not settings.jwks:
        return settings.key
    try:
        key_id = jwt.get_unverified_header(token).get("kid")
    except jwt.InvalidTokenError:
        raise TokenError("malformed_token", "the token is not a valid JWT") from None
    if not isinstance(key_id, str) or key_id not in settings.jwks:
        raise TokenError(
            "unknown_key", "the token's kid names no key of the configured JWKS"
        ) from None
    return settings.jwks[key_id]


def verify_token(token: str, settings: TokenSettings) -> Principal:
    """Verify `token` and return its principal, or raise `TokenError`."""
    if not token:
        raise TokenError("missing_token", "no bearer token was sent")
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenError("malformed_token", f"the token is longer than {MAX_TOKEN_BYTES} bytes")
    options: Options = {"require": ["exp"], "verify_aud": settings.audience is not None}
    key = _verification_key(token, settings)
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[settings.algorithm],
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=settings.leeway_seconds,
            options=options,
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("token_expired", "the token has expired; get a new one") from None
    except jwt.ImmatureSignatureError:
        raise TokenError("token_not_yet_valid", "the token is not valid yet (nbf/iat)") from None
    except jwt.InvalidAudienceError:
        raise TokenError("wrong_audience", "the token was not issued for this API") from None
    except jwt.InvalidIssuerError:
        raise TokenError("wrong_issuer", "the token was not issued by a trusted issuer") from None
    except jwt.InvalidAlgorithmError:
        raise TokenError(
            "wrong_algorithm", f"the token must be signed with {settings.algorithm}"
        ) from None
    except jwt.InvalidSignatureError:
        raise TokenError("bad_signature", "the token's signature is not valid") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError("malformed_token", f"the token lacks the {exc.claim!r} claim") from None
    except jwt.InvalidTokenError:
        raise TokenError("malformed_token", "the token is not a valid JWT") from None
    subject = claims.get("sub")
    tenant = claims.get(settings.tenant_claim)
    if tenant is not None and tenant != "":
        if not isinstance(tenant, str) or not _is_tenant_id(tenant):
            raise TokenError(
                "malformed_token",
                f"the token's {settings.tenant_claim!r} claim is not a tenant id",
            )
    return Principal(
        subject=subject if isinstance(subject, str) else "",
        tenant_id=tenant if isinstance(tenant, str) and tenant else None,
        permissions=_permissions(claims, settings.permission_claims),
    )


def mint_development_token(
    secret: str,
    *,
    subject: str,
    tenant_id: str | None,
    permissions: Iterable[str],
    ttl: timedelta = timedelta(hours=1),
    issuer: str | None = None,
    audience: str | None = None,
    tenant_claim: str = "tenant_id",
    now: datetime | None = None,
) -> str:
    """An HS256 token for development and tests; refuses without a proper secret."""
    if len(secret.encode()) < 32:
        raise ValueError(
            "no development JWT secret configured (RECORDINGS_JWT_DEV_SECRET, 32+ bytes): "
            "development tokens are refused"
        )
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": subject,
        "iat": int(issued.timestamp()),
        "nbf": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
        "permissions": sorted(permissions),
    }
    if tenant_id is not None:
        claims[tenant_claim] = tenant_id
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")
