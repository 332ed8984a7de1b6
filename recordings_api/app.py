"""The API's app factory: `uvicorn --factory recordings_api.app:create_app`."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import dagster as dg
from litestar import Litestar, get
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from recordings.db.engine import create_db_engine
from recordings.storage import S3Connection
from recordings_api.archives.controllers import DayLinksController
from recordings_api.errors import EXCEPTION_HANDLERS
from recordings_api.settings import ApiSettings
from recordings_api.state import ApiState


@get("/health/live", operation_id="healthLive", summary="The process is up")
async def health_live() -> dict[str, str]:
    return {"status": "ok"}


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
        route_handlers=[health_live, DayLinksController],
        dependencies={"api": Provide(provide_state, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(title="Daily conversation audio recordings", version="1.0.0"),
    )
