"""Every error the API returns is JSON with a stable `code` and a human `detail`."""

from collections.abc import Mapping

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})


def _json(
    status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        content={"code": code, "detail": detail},
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json",
    )


def api_error_handler(_: Request, exc: ApiError) -> Response:
    return _json(exc.status, exc.code, exc.detail, exc.headers)


def http_error_handler(_: Request, exc: HTTPException) -> Response:
    if isinstance(exc, ValidationException):
        problems = [
            f"{item.get('key', '')}: {item.get('message', '')}".strip(": ")
            for item in (exc.extra if isinstance(exc.extra, list) else [])
            if isinstance(item, dict)
        ]
        detail = str(exc.detail) + (f" ({'; '.join(problems)})" if problems else "")
        return _json(400, "invalid_request", detail)
    if isinstance(exc, NotFoundException):
        return _json(404, "not_found", "no such endpoint")
    return _json(exc.status_code, "http_error", str(exc.detail))


def unexpected_error_handler(_: Request, exc: Exception) -> Response:
    return _json(500, "internal_error", "an unexpected error occurred; it has been logged")


EXCEPTION_HANDLERS = {
    ApiError: api_error_handler,
    HTTPException: http_error_handler,
    Exception: unexpected_error_handler,
}
