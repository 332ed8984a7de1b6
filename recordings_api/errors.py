"""Every error the API returns is JSON with a stable `code` and a human `detail`.

Handlers raise `ApiError` for the refusals they decide. Infrastructure failures are mapped here
too: an unreachable database or S3 server is a 503 that says which one (clients retry, operators
look at `/health/ready`), and anything unexpected is a 500 that is logged with its traceback
and never shows one. `error_responses` documents the same bodies in the OpenAPI schema.
"""

import logging
from collections.abc import Mapping

import msgspec
import sqlalchemy.exc
import urllib3.exceptions
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from minio.error import MinioException

from recordings.outages import DATABASE_OUTAGES

logger = logging.getLogger("recordings_api")


class ErrorBody(msgspec.Struct):
    """The body of every error response."""

    code: str  # stable, for programs: e.g. "rate_limited", "link_expired"
    detail: str  # for people: what was wrong and what to do


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        # Set when the refusal of an audited attempt could not be recorded (see attempts.py).
        self.audit_failure: Exception | None = None


# What each error status means, for the OpenAPI description of every operation.
ERROR_DESCRIPTIONS = {
    400: "The request is invalid (`invalid_request`, `invalid_day`, `missing_day`, "
    "`day_not_over`, `invalid_settings`, `invalid_cursor`); `detail` says what to change.",
    401: "No valid credentials: a bearer token that is missing, malformed, expired, not yet "
    "valid, wrongly signed or for another issuer/audience (`WWW-Authenticate: Bearer`), or a "
    "download link that is expired, tampered with or signed by a retired key (`link_*`).",
    403: "Authenticated but not allowed: the token lacks the tenant or the permission "
    "(`permission_missing`), the tenant's feature is disabled (`feature_disabled`), or a "
    "download link was sent with another tenant's bearer token (`link_foreign_tenant`).",
    404: "The tenant does not exist (`unknown_tenant`), or has no webhook "
    "(`webhook_not_registered`).",
    409: "A webhook test event is still pending and not attempted yet "
    "(`webhook_test_pending`): one at a time; `detail` gives its id. Send another once it is "
    "delivered or failed (see the deliveries).",
    410: "The archive was deleted by the tenant's retention (`archive_gone`).",
    422: "The webhook url is refused: not a valid absolute URL or has credentials in it "
    "(`webhook_url_invalid`), not https (`webhook_url_not_https`), a name that resolves to a "
    "loopback, private, link-local or metadata address (`webhook_address_forbidden`) or to "
    "nothing (`webhook_name_unresolvable`); nothing was stored.",
    429: "More than the tenant's download limit in the last hour (`rate_limited`); "
    "`Retry-After` gives the seconds until the next download fits.",
    503: "A backing service is unreachable (`database_unavailable`, `storage_unavailable`, "
    "`dagster_unavailable`); retry later. Webhook operations: webhooks are not configured "
    "on this service (`webhooks_not_configured`, until the operator sets "
    "RECORDINGS_WEBHOOK_KEY).",
}


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI response entries for the given error statuses (503 is always possible)."""
    return {
        status: ResponseSpec(
            data_container=ErrorBody,
            description=ERROR_DESCRIPTIONS[status],
            generate_examples=False,
        )
        for status in sorted({*statuses, 503})
    }


def _json(
    status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        content={"code": code, "detail": detail},
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json",
    )


def api_error_handler(request: Request, exc: ApiError) -> Response:
    # No refusal is answered unrecorded: if its audit entry could not be written, the answer is
    # what stopped it (a 503 when the database is down), as for any other failed request.
    if isinstance(exc.audit_failure, sqlalchemy.exc.DBAPIError):
        return database_error_handler(request, exc.audit_failure)
    if exc.audit_failure is not None:
        return unexpected_error_handler(request, exc.audit_failure)
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
        return _json(404, "not_found", "no such endpoint; see /schema for the API")
    if exc.status_code == 405:
        return _json(405, "method_not_allowed", str(exc.detail), exc.headers)
    return _json(exc.status_code, "http_error", str(exc.detail), exc.headers)


def _unavailable(request: Request, exc: Exception, code: str, what: str) -> Response:
    logger.warning("%s on %s %s: %s", code, request.method, request.url.path, exc)
    return _json(
        503,
        code,
        f"{what} is unreachable; retry in a minute (operators: see /health/ready)",
        {"Retry-After": "30"},
    )


def database_error_handler(request: Request, exc: sqlalchemy.exc.DBAPIError) -> Response:
    if not isinstance(exc, DATABASE_OUTAGES):
        return unexpected_error_handler(request, exc)
    return _unavailable(request, exc, "database_unavailable", "the application database")


def storage_error_handler(request: Request, exc: Exception) -> Response:
    return _unavailable(request, exc, "storage_unavailable", "the archive storage")


def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return _json(500, "internal_error", "an unexpected error occurred; it has been logged")


EXCEPTION_HANDLERS = {
    ApiError: api_error_handler,
    HTTPException: http_error_handler,
    sqlalchemy.exc.DBAPIError: database_error_handler,
    urllib3.exceptions.HTTPError: storage_error_handler,
    MinioException: storage_error_handler,
    Exception: unexpected_error_handler,
}
