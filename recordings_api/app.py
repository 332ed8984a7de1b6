"""The API's app factory: `uvicorn --factory recordings_api.app:create_app`."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import dagster as dg
import sqlalchemy as sa
from litestar import Litestar, Response, get
from litestar.di import NamedDependency, Provide
from litestar.openapi import OpenAPIConfig

from recordings.db.engine import create_db_engine
from recordings.storage import S3Connection
from recordings_api.archives.controllers import DayLinksController
from recordings_api.errors import EXCEPTION_HANDLERS
from recordings_api.host.controllers import HostSettingsController
from recordings_api.settings import ApiSettings
from recordings_api.state import ApiState


@get("/health/live", operation_id="healthLive", summary="The process is up")
async def health_live() -> dict[str, str]:
    return {"status": "ok"}


@get("/health/ready", operation_id="healthReady", summary="Database, S3 and Dagster reachable")
async def health_ready(api: NamedDependency[ApiState]) -> Response[dict[str, object]]:
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
        body: dict[str, object] = {
            "code": "not_ready",
            "detail": f"not ready: {', '.join(down)} unreachable",
            "checks": checks,
        }
        return Response(body, status_code=503)
    return Response({"status": "ready", "checks": checks}, status_code=200)


def create_app(
    settings: ApiSettings | None = None, instance: dg.DagsterInstance | None = None
) -> Litestar:
    """Build the app; settings from the environment and the Dagster instance from
    DAGSTER_HOME unless given (tests pass both)."""
    config = settings or ApiSettings.from_env()
    holder: dict[str, ApiState] = {}

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        engine = create_db_engine(config.database_url)
        s3 = config.s3
        owned = instance is None
        dagster_instance = instance or dg.DagsterInstance.get()
        holder["state"] = ApiState(
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

    def provide_state() -> ApiState:
        return holder["state"]

    return Litestar(
        route_handlers=[health_live, health_ready, DayLinksController, HostSettingsController],
        dependencies={"api": Provide(provide_state, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(title="Daily conversation audio recordings", version="1.0.0"),
    )
