"""Bearer token verification against the attacks a compliance API must withstand.

`alg: none`, HS/RS algorithm confusion, forged signatures, expired and not-yet-valid tokens,
wrong audience or issuer: each must be refused with a stable code, never accepted.
"""

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from recordings.tokens import (
    READ_PERMISSION,
    TokenError,
    TokenSettings,
    load_jwks,
    mint_development_token,
    verify_token,
)

SECRET = secrets.token_urlsafe(32)


def _hs_settings(**overrides: object) -> TokenSettings:
    values: dict[str, object] = {"algorithm": "HS256", "key": SECRET}
    values.update(overrides)
    return TokenSettings(**values)  # type: ignore[arg-type]


def _claims(**overrides: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": "client-1",
        "tenant_id": "acme",
        "permissions": [READ_PERMISSION],
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(hours=1)).timestamp()),
    }
    claims.update(overrides)
    return claims


def _code(token: str, settings: TokenSettings) -> str:
    with pytest.raises(TokenError) as error:
        verify_token(token, settings)
    return error.value.code


def test_a_valid_development_token_names_tenant_and_permission() -> None:
    token = mint_development_token(
        SECRET, subject="client-1", tenant_id="acme", permissions=[READ_PERMISSION]
    )
    principal = verify_token(token, _hs_settings())
    assert principal.tenant_id == "acme"
    assert principal.subject == "client-1"
    assert principal.has(READ_PERMISSION)


def test_scope_strings_are_split_like_oauth_scopes() -> None:
    token = jwt.encode(_claims(permissions=None, scope=f"openid {READ_PERMISSION}"), SECRET)
    assert verify_token(token, _hs_settings()).has(READ_PERMISSION)


def test_alg_none_is_refused() -> None:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    body = base64.urlsafe_b64encode(json.dumps(_claims()).encode())
    token = f"{header.rstrip(b'=').decode()}.{body.rstrip(b'=').decode()}."
    assert _code(token, _hs_settings()) in {"wrong_algorithm", "malformed_token"}


def test_hs_rs_confusion_is_refused() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings = TokenSettings(algorithm="RS256", key=public_pem)
    good = jwt.encode(_claims(), private, algorithm="RS256")
    assert verify_token(good, settings).tenant_id == "acme"
    # The attacker signs HS256 with the *public* key as the HMAC secret.
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = base64.urlsafe_b64encode(json.dumps(_claims(tenant_id="globex")).encode())
    signing_input = f"{header.rstrip(b'=').decode()}.{body.rstrip(b'=').decode()}"
    mac = hmac.new(public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    assert _code(forged, settings) == "wrong_algorithm"


def test_es256_tokens_verify_with_the_public_key() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    token = jwt.encode(_claims(), private, algorithm="ES256")
    assert verify_token(token, TokenSettings(algorithm="ES256", key=public_pem)).has(
        READ_PERMISSION
    )


@pytest.mark.parametrize(
    ("claims", "settings", "code"),
    [
        (
            lambda now: _claims(exp=int((now - timedelta(minutes=5)).timestamp())),
            {},
            "token_expired",
        ),
        (
            lambda now: _claims(nbf=int((now + timedelta(minutes=5)).timestamp())),
            {},
            "token_not_yet_valid",
        ),
        (lambda now: _claims(aud="other-api"), {"audience": "recordings-api"}, "wrong_audience"),
        (lambda now: _claims(), {"audience": "recordings-api"}, "malformed_token"),
        (
            lambda now: _claims(iss="https://evil.example"),
            {"issuer": "https://idp.example"},
            "wrong_issuer",
        ),
        (lambda now: {"sub": "x", "tenant_id": "acme"}, {}, "malformed_token"),
    ],
)
def test_bad_claims_are_refused_with_a_stable_code(
    claims: Callable[[datetime], dict[str, object]], settings: dict[str, object], code: str
) -> None:
    # Times are taken when the test runs, not when the module is collected: a long suite
    # would otherwise turn "five minutes from now" into the past.
    token = jwt.encode(claims(datetime.now(UTC)), SECRET)
    assert _code(token, _hs_settings(**settings)) == code


def test_forged_and_garbage_tokens_are_refused() -> None:
    forged = jwt.encode(_claims(), secrets.token_urlsafe(32))
    assert _code(forged, _hs_settings()) == "bad_signature"
    assert _code("not-a-jwt", _hs_settings()) == "malformed_token"
    assert _code("", _hs_settings()) == "missing_token"


def test_misconfiguration_is_caught_at_startup() -> None:
    with pytest.raises(ValueError, match="not supported"):
        TokenSettings(algorithm="none", key=SECRET)
    with pytest.raises(ValueError, match="at least 32 bytes"):
        TokenSettings(algorithm="HS256", key="short")
    with pytest.raises(ValueError, match="PEM public key"):
        TokenSettings(algorithm="RS256", key=SECRET)


def test_minting_is_refused_without_a_development_secret() -> None:
    with pytest.raises(ValueError, match="development tokens are refused"):
        mint_development_token("", subject="x", tenant_id="acme", permissions=[])


def _rsa_jwk(private: rsa.RSAPrivateKey, kid: str) -> dict[str, object]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def test_jwks_keys_are_picked_by_kid_and_unknown_kids_are_refused() -> None:
    current = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    previous = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    document = json.dumps({"keys": [_rsa_jwk(current, "2026-11"), _rsa_jwk(previous, "2026-10")]})
    settings = TokenSettings(algorithm="RS256", jwks=load_jwks(document, "RS256"))
    for key, kid in ((current, "2026-11"), (previous, "2026-10")):
        token = jwt.encode(_claims(), key, algorithm="RS256", headers={"kid": kid})
        assert verify_token(token, settings).tenant_id == "acme"
    # A stranger's key under a known kid fails the signature; an unknown kid is refused.
    forged = jwt.encode(_claims(), stranger, algorithm="RS256", headers={"kid": "2026-11"})
    assert _code(forged, settings) == "bad_signature"
    unknown = jwt.encode(_claims(), stranger, algorithm="RS256", headers={"kid": "evil"})
    assert _code(unknown, settings) == "unknown_key"
    # HS256 "signed" with a JWKS member's public numbers is still the wrong algorithm.
    confused = jwt.encode(_claims(), SECRET, algorithm="HS256", headers={"kid": "2026-11"})
    assert _code(confused, settings) == "wrong_algorithm"


def test_a_jwks_without_usable_keys_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="no signing key"):
        load_jwks(json.dumps({"keys": [{"kty": "oct", "kid": "x", "k": "c2VjcmV0"}]}), "RS256")
    with pytest.raises(ValueError, match="keys"):
        load_jwks("[]", "RS256")
    with pytest.raises(ValueError, match="RS256 or ES256"):
        TokenSettings(algorithm="HS256", jwks={"k": "v"})


def test_oversized_tokens_are_refused_unread() -> None:
    token = jwt.encode(_claims(padding="x" * 10_000), SECRET)
    assert _code(token, _hs_settings()) == "malformed_token"


def test_roles_claim_carries_permissions_too() -> None:
    token = jwt.encode(_claims(permissions=None, roles=[READ_PERMISSION]), SECRET)
    assert verify_token(token, _hs_settings()).has(READ_PERMISSION)


@pytest.mark.parametrize("tenant", ["../../etc", "ACME", "a" * 64, 42, ["acme"]])
def test_a_tenant_claim_that_is_not_a_tenant_id_is_refused(tenant: object) -> None:
    assert _code(jwt.encode(_claims(tenant_id=tenant), SECRET), _hs_settings()) == (
        "malformed_token"
    )
