"""The API's app factory: `uvicorn --factory recordings_api.app:create_app`."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import dagster as dg
import msgspec
import sqlalchemy as sa
from litestar import Litestar, Response, get
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import Components, SecurityScheme, Tag

from recordings.db.engine import create_db_engine
from recordings.storage import S3Connection
from recordings_api import redaction
from recordings_api.archives.controllers import DayLinksController, DownloadController
from recordings_api.attempts import audit_refusal
from recordings_api.audit.controllers import HostAuditController, TenantAuditController
from recordings_api.errors import EXCEPTION_HANDLERS, ApiError
from recordings_api.host.controllers import HostSettingsController
from recordings_api.settings import ApiSettings
from recordings_api.state import API_STATE, ApiState, provide_api_state
from recordings_api.webhooks.controllers import HostWebhookController, TenantWebhookController


class Liveness(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct, omit_defaults=True):
    """`checks` names each dependency with "ok" or "unreachable: <error type>"."""

    checks: dict[str, str]
    status: str | None = None  # "ready" when every check is ok
    code: str | None = None  # "not_ready" otherwise
    detail: str | None = None


@get("/health/live", operation_id="healthLive", summary="The process is up", tags=["health"])
async def health_live() -> Liveness:
    return Liveness("ok")


@get(
    "/health/ready",
    operation_id="healthReady",
    summary="Database, S3 and Dagster reachable",
    description="200 when the application database, the archive bucket and the Dagster "
    "instance all answer; 503 naming the ones that do not.",
    tags=["health"],
    responses={503: ResponseSpec(Readiness, description="Not ready: `checks` says what is down")},
    sync_to_thread=True,
)
def health_ready(api: NamedDependency[ApiState]) -> Response[Readiness]:
    checks: dict[str, str] = {}
    try:
        with api.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        api.s3.bucket_exists(api.settings.s3.archive_bucket)
        checks["s3"] = "ok"
    except Exception as exc:
        checks["s3"] = f"unreachable: {type(exc).__name__}"
    try:
        api.instance.get_runs(limit=1)
        checks["dagster"] = "ok"
    except Exception as exc:
        checks["dagster"] = f"unreachable: {type(exc).__name__}"
    down = sorted(name for name, state in checks.items() if state != "ok")
    if down:
        detail = f"not ready: {', '.join(down)} unreachable"
        return Response(Readiness(checks, code="not_ready", detail=detail), status_code=503)
    return Response(Readiness(checks, status="ready"), status_code=200)


OPENAPI = OpenAPIConfig(
    title="Daily conversation audio recordings",
    version="1.0.0",
    description="Hourly Opus ZIP archives of each tenant's conversation audio, one UTC day "
    "at a time: signed, rate-limited, audited download links for tenants' compliance teams, "
    "and feature settings and audit for the host. Errors are JSON `{code, detail}` with a "
    "stable `code`.",
    components=Components(
        security_schemes={
            "BearerToken": SecurityScheme(
                type="http",
                scheme="bearer",
                bearer_format="JWT",
                description="Tenants: `tenant_id` claim and the "
                "DailyConversationAudioRecordings.Read permission (in `permissions`, `scope` "
                "or `roles`); managing the tenant's webhook needs "
                "DailyConversationAudioRecordings.Webhooks instead. Host: the "
                "DailyConversationAudioRecordings.Admin permission. "
                "Claim and permission names are configurable.",
            )
        }
    ),
    tags=[
        Tag(name="tenant", description="For tenants' compliance clients"),
        Tag(name="host", description="For the host operator"),
        Tag(name="health", description="For load balancers and orchestrators"),
    ],
)


async def refuse_nul_bytes(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """A NUL byte in the path or a query parameter is a 400 before any handler runs: no id,
    date or filter of this API contains one, SQLite would store it and PostgreSQL cannot (a
    driver error, found by fuzzing on PostgreSQL). The app's guard, so the first of every
    route's guards: refused before authentication, and never an audited attempt."""
    if "\x00" in connection.url.path or any(
        "\x00" in key or "\x00" in value for key, value in connection.query_params.multi_items()
    ):
        raise ApiError(
            400, "invalid_request", "the path and query parameters must not contain NUL bytes"
        )


def create_app(
    settings: ApiSettings | None = None, instance: dg.DagsterInstance | None = None
) -> Litestar:
    """Build the app; settings from the environment and the Dagster instance from
    DAGSTER_HOME unless given (tests pass both)."""
    config = settings or ApiSettings.from_env()
    redaction.install()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        engine = create_db_engine(config.database_url)
        s3 = config.s3
        owned = instance is None
        dagster_instance = instance or dg.DagsterInstance.get()
        if owned:
            # Pooled connections, as Dagster's webserver holds them: dagster-postgres otherwise
            # opens a connection per query, which doubled the day lookup's cost on PostgreSQL
            # (bench/scale.py). SQLite storage ignores this. A lookup never waits long: 15 s.
            dagster_instance.optimize_for_webserver(
                statement_timeout=15_000, pool_recycle=3600, max_overflow=20
            )
        app.state[API_STATE] = ApiState(
            settings=config,
            engine=engine,
            s3=S3Connection(s3.endpoint, s3.access_key, s3.secret_key, s3.region).client(),
            public_s3=S3Connection(
                config.s3_public_endpoint, s3.access_key, s3.secret_key, s3.region
            ).client(),
            instance=dagster_instance,
        )
        try:
            yield
        finally:
            engine.dispose()
            if owned:
                dagster_instance.dispose()

    return Litestar(
        route_handlers=[
            health_live,
            health_ready,
            DownloadController,  # first, as the schema has always listed its path first
            DayLinksController,
            TenantAuditController,
            HostSettingsController,
            HostAuditController,
            TenantWebhookController,
            HostWebhookController,
        ],
        dependencies={"api": Provide(provide_api_state, sync_to_thread=False)},
        guards=[refuse_nul_bytes],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        after_exception=[audit_refusal],
        lifespan=[lifespan],
        openapi_config=OPENAPI,
    )
