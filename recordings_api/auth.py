"""Bearer authentication: the guards of the protected endpoints and what they provide.

A guard verifies the request's bearer token (once per request: the principal is kept in the
request's state) and checks what its endpoints need; the dependency providers hand what it
verified (the token's tenant, who is acting) to the handlers and services. Guards run before
the request's parameters are read, so a stranger learns nothing about them. (A download link is
its own credential: the download service verifies it.)
"""

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from recordings.tokens import Principal, TokenError, TokenSettings, verify_token
from recordings_api.attempts import attempt_of
from recordings_api.errors import ApiError
from recordings_api.state import api_state

PRINCIPAL = "principal"  # the key of the verified Principal in the request's state


def authenticate(connection: ASGIConnection, settings: TokenSettings) -> Principal:
    """The verified principal of the request's bearer token, or a 401 ApiError."""
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "missing_token",
            "send Authorization: Bearer <token>",
            {"WWW-Authenticate": "Bearer"},
        )
    try:
        return verify_token(token.strip(), settings)
    except TokenError as exc:
        raise ApiError(
            401, exc.code, str(exc), {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        ) from None


def principal_of(connection: ASGIConnection) -> Principal:
    """The request's verified principal, authenticated on first use (or a 401 ApiError)."""
    principal = connection.state.get(PRINCIPAL)
    if not isinstance(principal, Principal):
        principal = authenticate(connection, api_state(connection).settings.tokens)
        connection.state[PRINCIPAL] = principal
    return principal


def tenant_of(connection: ASGIConnection) -> str:
    """The tenant the request's token names, or a 403 ApiError."""
    tenant_id = principal_of(connection).tenant_id
    if not tenant_id:
        raise ApiError(403, "permission_missing", "the token names no tenant")
    return tenant_id


def _require(connection: ASGIConnection, permission: str) -> None:
    if not principal_of(connection).has(permission):
        raise ApiError(403, "permission_missing", f"the token needs the {permission} permission")


def requires_host(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """A token with the host permission."""
    _require(connection, api_state(connection).settings.tokens.host_permission)


def requires_reader(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """A token with the read permission."""
    _require(connection, api_state(connection).settings.tokens.read_permission)


def requires_tenant(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """A token that names a tenant."""
    tenant_of(connection)


def _require_tenant_with(principal: Principal, permission: str) -> None:
    if not principal.tenant_id or not principal.has(permission):
        raise ApiError(
            403,
            "permission_missing",
            f"the token needs a tenant and the {permission} permission",
        )


def requires_tenant_webhooks(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """A token that names a tenant and has the webhook permission: a webhook says where the
    service posts the tenant's events, which reading the archives does not allow."""
    tokens = api_state(connection).settings.tokens
    _require_tenant_with(principal_of(connection), tokens.webhook_permission)


def requires_tenant_reader(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """A token that names a tenant and has the read permission, for an audited attempt: who is
    asking is added to the attempt first, so that a refusal is recorded under the token's
    tenant."""
    principal = principal_of(connection)
    attempt_of(connection).asked_by(principal.tenant_id, principal.subject)
    _require_tenant_with(principal, api_state(connection).settings.tokens.read_permission)


def provide_token_tenant_id(request: Request) -> str:
    """The tenant a guard found the token to name."""
    return tenant_of(request)
