"""API test settings: a development JWT secret, fresh link and webhook keys, the test
session's S3."""

import secrets
from collections.abc import Callable

import pytest

from recordings.links import LinkSigner
from recordings.settings import S3Settings
from recordings.tokens import TokenSettings
from recordings_api.settings import ApiSettings

JWT_SECRET = secrets.token_urlsafe(32)


@pytest.fixture
def api_settings(recordings_env: dict[str, str]) -> Callable[..., ApiSettings]:
    """Build ApiSettings for the test environment; keyword arguments override fields."""

    def build(**overrides: object) -> ApiSettings:
        s3 = S3Settings.from_env()
        values: dict[str, object] = {
            "database_url": recordings_env["RECORDINGS_DATABASE_URL"],
            "s3": s3,
            "s3_public_endpoint": s3.endpoint,
            "tokens": TokenSettings(algorithm="HS256", key=JWT_SECRET),
            "link_signer": LinkSigner({"k1": secrets.token_bytes(32)}, "k1"),
            "public_base_url": "http://testserver",
            # Webhooks on, with loopback receivers allowed, as in local development.
            "webhook_key": secrets.token_bytes(32),
            "webhook_allow_loopback": True,
        }
        values.update(overrides)
        return ApiSettings(**values)  # type: ignore[arg-type]

    return build
