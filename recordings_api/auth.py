"""Bearer authentication shared by every protected endpoint."""

from litestar import Request

from recordings.tokens import Principal, TokenError, TokenSettings, verify_token
from recordings_api.errors import ApiError


def authenticate(request: Request, settings: TokenSettings) -> Principal:
    """The verified principal of the request's bearer token, or a 401 ApiError."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
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


def requires_permission(principal: Principal, permission: str) -> None:
    if not principal.has(permission):
        raise ApiError(403, "permission_missing", f"the token needs the {permission} permission")
