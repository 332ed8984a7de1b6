"""The API's settings come from the environment and misconfiguration stops it at startup with a
message that says which variable to fix."""

import base64
import json
import secrets
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from recordings.settings import SettingsError, env_flag
from recordings_api.settings import ApiSettings

LINK_KEY = f"k1:{base64.b64encode(secrets.token_bytes(32)).decode()}"


@pytest.fixture
def api_env(recordings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RECORDINGS_JWT_DEV_SECRET", "RECORDINGS_JWT_KEY", "RECORDINGS_JWT_JWKS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RECORDINGS_LINK_KEYS", LINK_KEY)


@pytest.mark.usefixtures("api_env")
def test_a_jwks_file_configures_rs256_with_custom_claims(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "idp-1"}]}))
    monkeypatch.setenv("RECORDINGS_JWT_ALGORITHM", "RS256")
    monkeypatch.setenv("RECORDINGS_JWT_JWKS_FILE", str(jwks))
    monkeypatch.setenv("RECORDINGS_JWT_TENANT_CLAIM", "org")
    monkeypatch.setenv("RECORDINGS_JWT_PERMISSION_CLAIMS", "roles")
    monkeypatch.setenv("RECORDINGS_JWT_HOST_PERMISSION", "Platform.Operator")
    settings = ApiSettings.from_env()
    assert set(settings.tokens.jwks) == {"idp-1"}
    assert settings.tokens.tenant_claim == "org"
    assert settings.tokens.permission_claims == ("roles",)
    assert settings.tokens.host_permission == "Platform.Operator"


@pytest.mark.usefixtures("api_env")
@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({}, "no JWT verification key"),
        ({"RECORDINGS_JWT_DEV_SECRET": "short"}, "at least 32 bytes"),
        (
            {"RECORDINGS_JWT_ALGORITHM": "RS256", "RECORDINGS_JWT_JWKS_FILE": "/nonexistent"},
            "RECORDINGS_JWT_JWKS_FILE",
        ),
        (
            {"RECORDINGS_JWT_DEV_SECRET": "s" * 40, "RECORDINGS_LINK_KEYS": "k1:short"},
            "RECORDINGS_LINK_KEYS",
        ),
        (
            {"RECORDINGS_JWT_DEV_SECRET": "s" * 40, "RECORDINGS_LINK_ACTIVE_KEY": "k9"},
            "not among the configured keys",
        ),
        (
            {"RECORDINGS_JWT_DEV_SECRET": "s" * 40, "RECORDINGS_DOWNLOAD_LIMIT": "ten"},
            "RECORDINGS_DOWNLOAD_LIMIT",
        ),
        (
            {"RECORDINGS_JWT_DEV_SECRET": "s" * 40, "RECORDINGS_WEBHOOK_KEY": "not base64!"},
            "RECORDINGS_WEBHOOK_KEY is not base64",
        ),
        (
            {"RECORDINGS_JWT_DEV_SECRET": "s" * 40, "RECORDINGS_WEBHOOK_KEY": "c2hvcnQ="},
            "RECORDINGS_WEBHOOK_KEY has 5 bytes",
        ),
        (
            {"RECORDINGS_JWT_DEV_SECRET": "s" * 40, "RECORDINGS_WEBHOOK_ALLOW_LOOPBACK": "ture"},
            "RECORDINGS_WEBHOOK_ALLOW_LOOPBACK='ture' is not a yes/no value: use true or false",
        ),
    ],
)
def test_misconfiguration_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=message):
        ApiSettings.from_env()


@pytest.mark.usefixtures("api_env")
def test_webhooks_are_off_without_a_key_and_loopback_is_off_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RECORDINGS_JWT_DEV_SECRET", "s" * 40)
    for name in ("RECORDINGS_WEBHOOK_KEY", "RECORDINGS_WEBHOOK_ALLOW_LOOPBACK"):
        monkeypatch.delenv(name, raising=False)
    settings = ApiSettings.from_env()
    assert settings.webhook_key is None and settings.webhook_allow_loopback is False
    key = secrets.token_bytes(32)
    monkeypatch.setenv("RECORDINGS_WEBHOOK_KEY", base64.b64encode(key).decode())
    monkeypatch.setenv("RECORDINGS_WEBHOOK_ALLOW_LOOPBACK", "true")
    monkeypatch.setenv("RECORDINGS_JWT_WEBHOOK_PERMISSION", "Hooks.Manage")
    settings = ApiSettings.from_env()
    assert settings.webhook_key == key and settings.webhook_allow_loopback is True
    assert settings.tokens.webhook_permission == "Hooks.Manage"


@pytest.mark.usefixtures("api_env")
@pytest.mark.parametrize(("text", "allowed"), [("yes", True), ("1", True), ("off", False)])
def test_the_api_reads_the_loopback_switch_as_the_code_location_does(
    monkeypatch: pytest.MonkeyPatch, text: str, allowed: bool
) -> None:
    """One variable, one meaning: both processes read it with `recordings.settings.env_flag`
    (a value the code location took as yes once made the API refuse to start)."""
    monkeypatch.setenv("RECORDINGS_JWT_DEV_SECRET", "s" * 40)
    monkeypatch.setenv("RECORDINGS_WEBHOOK_ALLOW_LOOPBACK", text)
    assert ApiSettings.from_env().webhook_allow_loopback is allowed
    assert env_flag("RECORDINGS_WEBHOOK_ALLOW_LOOPBACK") is allowed
