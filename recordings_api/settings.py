"""API settings, read from the environment once (RECORDINGS_* variables)."""

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from recordings.links import LinkSigner, parse_link_keys
from recordings.settings import (
    S3Settings,
    SettingsError,
    database_url_from_env,
    env_flag,
    env_or,
    env_value,
)
from recordings.tokens import (
    HOST_PERMISSION,
    READ_PERMISSION,
    WEBHOOK_PERMISSION,
    TokenSettings,
    load_jwks,
)
from recordings.webhooks.delivery import Resolver
from recordings.webhooks.signing import parse_webhook_key


def _webhook_key() -> bytes | None:
    text = env_value("WEBHOOK_KEY")
    if text is None:
        return None
    try:
        return parse_webhook_key(text)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def _webhook_allow_loopback() -> bool:
    try:
        return env_flag("RECORDINGS_WEBHOOK_ALLOW_LOOPBACK")
    except ValueError as exc:
        raise SettingsError(f"{exc} (true: local development and tests only)") from None


@dataclass(frozen=True)
class ApiSettings:
    database_url: str
    s3: S3Settings
    s3_public_endpoint: str  # what clients' presigned URLs point at
    tokens: TokenSettings
    link_signer: LinkSigner
    public_base_url: str  # where clients reach this API, for the links we hand out
    download_limit: int = 10
    download_window: timedelta = timedelta(hours=1)
    link_ttl: timedelta = timedelta(hours=24)
    presigned_ttl: timedelta = timedelta(minutes=5)
    # Derives tenants' webhook secrets; without it the webhook endpoints answer 503.
    webhook_key: bytes | None = None
    # Local development and tests only: lets a webhook point at a loopback address.
    webhook_allow_loopback: bool = False
    # How webhook URLs' names are resolved when registered; None: the system's DNS (tests pass
    # a fixed map of names to addresses).
    webhook_resolver: Resolver | None = None

    @classmethod
    def from_env(cls) -> "ApiSettings":
        s3 = S3Settings.from_env()
        algorithm = env_or("JWT_ALGORITHM", "HS256")
        jwks_file = env_value("JWT_JWKS_FILE")
        jwks: dict[str, object] = {}
        if jwks_file:
            try:
                jwks = load_jwks(Path(jwks_file).read_text(), algorithm)
            except (OSError, ValueError) as exc:
                raise SettingsError(f"RECORDINGS_JWT_JWKS_FILE={jwks_file}: {exc}") from None
        key = env_value("JWT_KEY") or (
            env_value("JWT_DEV_SECRET") if algorithm == "HS256" else None
        )
        if not key and not jwks:
            raise SettingsError(
                "no JWT verification key: set RECORDINGS_JWT_KEY (public key PEM for RS256/ES256), "
                "RECORDINGS_JWT_JWKS_FILE (RS256/ES256) or RECORDINGS_JWT_DEV_SECRET (HS256, "
                "development)"
            )
        claims = env_or("JWT_PERMISSION_CLAIMS", "permissions,scope,roles")
        try:
            tokens = TokenSettings(
                algorithm=algorithm,
                key=key or "",
                jwks=jwks,
                issuer=env_value("JWT_ISSUER"),
                audience=env_value("JWT_AUDIENCE"),
                tenant_claim=env_or("JWT_TENANT_CLAIM", "tenant_id"),
                permission_claims=tuple(filter(None, (c.strip() for c in claims.split(",")))),
                read_permission=env_or("JWT_READ_PERMISSION", READ_PERMISSION),
                host_permission=env_or("JWT_HOST_PERMISSION", HOST_PERMISSION),
                webhook_permission=env_or("JWT_WEBHOOK_PERMISSION", WEBHOOK_PERMISSION),
            )
        except ValueError as exc:
            raise SettingsError(f"JWT settings: {exc}") from None
        keys_spec = env_value("LINK_KEYS")
        if not keys_spec:
            raise SettingsError(
                "RECORDINGS_LINK_KEYS is not set: kid:base64secret[,kid:base64secret], "
                "e.g. k1:$(openssl rand -base64 32)"
            )
        try:
            keys = parse_link_keys(keys_spec)
            signer = LinkSigner(keys, env_value("LINK_ACTIVE_KEY") or next(iter(keys)))
        except ValueError as exc:
            raise SettingsError(
                f"RECORDINGS_LINK_KEYS / RECORDINGS_LINK_ACTIVE_KEY: {exc}"
            ) from None
        limit_text = env_or("DOWNLOAD_LIMIT", "10")
        if not limit_text.isdigit() or int(limit_text) < 1:
            raise SettingsError(
                f"RECORDINGS_DOWNLOAD_LIMIT={limit_text!r}: use a whole number of downloads "
                "per tenant per hour, at least 1"
            )
        return cls(
            database_url=database_url_from_env(),
            s3=s3,
            s3_public_endpoint=env_or("S3_PUBLIC_ENDPOINT", s3.endpoint),
            tokens=tokens,
            link_signer=signer,
            public_base_url=env_or("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/"),
            download_limit=int(limit_text),
            webhook_key=_webhook_key(),
            webhook_allow_loopback=_webhook_allow_loopback(),
        )
