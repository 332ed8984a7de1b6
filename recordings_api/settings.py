"""API settings, read from the environment once (RECORDINGS_* variables)."""

from dataclasses import dataclass
from datetime import timedelta

from recordings.links import LinkSigner, parse_link_keys
from recordings.settings import (
    S3Settings,
    SettingsError,
    database_url_from_env,
    env_or,
    env_value,
)
from recordings.tokens import TokenSettings


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

    @classmethod
    def from_env(cls) -> "ApiSettings":
        s3 = S3Settings.from_env()
        algorithm = env_or("JWT_ALGORITHM", "HS256")
        key = env_value("JWT_KEY") or (
            env_value("JWT_DEV_SECRET") if algorithm == "HS256" else None
        )
        if not key:
            raise SettingsError(
                "no JWT verification key: set RECORDINGS_JWT_KEY (public key PEM for RS256/ES256) "
                "or RECORDINGS_JWT_DEV_SECRET (HS256, development)"
            )
        keys_spec = env_value("LINK_KEYS")
        if not keys_spec:
            raise SettingsError(
                "RECORDINGS_LINK_KEYS is not set: kid:base64secret[,kid:base64secret], "
                "e.g. k1:$(openssl rand -base64 32)"
            )
        keys = parse_link_keys(keys_spec)
        active = env_value("LINK_ACTIVE_KEY") or next(iter(keys))
        return cls(
            database_url=database_url_from_env(),
            s3=s3,
            s3_public_endpoint=env_or("S3_PUBLIC_ENDPOINT", s3.endpoint),
            tokens=TokenSettings(
                algorithm=algorithm,
                key=key,
                issuer=env_value("JWT_ISSUER"),
                audience=env_value("JWT_AUDIENCE"),
                tenant_claim=env_or("JWT_TENANT_CLAIM", "tenant_id"),
            ),
            link_signer=LinkSigner(keys, active),
            public_base_url=env_or("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/"),
            download_limit=int(env_or("DOWNLOAD_LIMIT", "10")),
        )
