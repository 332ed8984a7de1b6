"""The tenant client against the real API: a real pipeline's day in a real Dagster instance and
S3 server, served over HTTP by the API's app in a uvicorn server on loopback.

The API runs in this process (a thread) so each test can give it its own limit, window and link
lifetime: a day across the limit in seconds, never an hour of real waiting.
"""

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import uvicorn
from minio import Minio

from recordings.catalog import ensure_tenant, register_recording, set_recording_settings
from recordings.db.engine import session_scope
from recordings.keys import day_hours
from recordings.tokens import READ_PERMISSION, mint_development_token
from recordings_api.app import create_app
from recordings_api.settings import ApiSettings
from recordings_cli.local_api import free_port
from recordings_cli.synth import FORMATS, write_conversation
from recordings_dagster.execution import run_request_job
from recordings_dagster.schedules import nightly_run_requests
from tests.api.conftest import JWT_SECRET, api_settings  # noqa: F401 (a fixture, shared)

HOURS_WITH_RECORDINGS = (5, 9)  # the others are archived empty


def tenant_token(tenant: str = "acme", permissions: list[str] | None = None) -> str:
    return mint_development_token(
        JWT_SECRET,
        subject=f"{tenant}-compliance",
        tenant_id=tenant,
        permissions=[READ_PERMISSION] if permissions is None else permissions,
    )


@dataclass(frozen=True)
class ArchivedDay:
    instance: dg.DagsterInstance
    day: date


@pytest.fixture
def recorded_day(
    tmp_path: Path, recordings_env: dict[str, str], engine: sa.Engine, s3_client: Minio
) -> date:
    """Yesterday's recordings for acme and globex (the feature enabled for both), not archived
    yet: one recording in each of two hours, the 22 others without any."""
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    source = recordings_env["RECORDINGS_SOURCE_BUCKET"]
    wav = tmp_path / "call.wav"
    write_conversation(wav, FORMATS["wav-ulaw"], 2.0, 8000, 1, seed=1)
    with session_scope(engine) as session:
        for tenant in ("acme", "globex"):
            ensure_tenant(session, tenant)
            set_recording_settings(session, tenant, changed_by="test", enabled=True)
            for hour in HOURS_WITH_RECORDINGS:
                key = f"tenants/{tenant}/call-{hour}.wav"
                s3_client.fput_object(source, key, str(wav))
                register_recording(
                    session,
                    tenant_id=tenant,
                    conversation_id=f"{tenant}-c{hour}",
                    session_id=f"{tenant}-s{hour}",
                    recording_id=f"{tenant}-r{hour}",
                    bucket=source,
                    object_key=key,
                    started_at=day_hours(day)[hour] + timedelta(minutes=3),
                    duration_seconds=2.0,
                    audio_format="WAV",
                    channels=1,
                )
    return day


def archive_day(instance: dg.DagsterInstance, day: date) -> None:
    """The real nightly job's runs for acme and globex, as the schedule requests them."""
    for request in nightly_run_requests(instance, ["acme", "globex"], day):
        with dg.execute_job(
            run_request_job(request), instance=instance, tags=request.tags
        ) as result:
            assert result.success


@pytest.fixture
def archived_day(recorded_day: date, dagster_instance: dg.DagsterInstance) -> ArchivedDay:
    """Yesterday archived by the real nightly job for acme and globex: two hours with a
    recording each, the 22 others empty."""
    archive_day(dagster_instance, recorded_day)
    return ArchivedDay(dagster_instance, recorded_day)


ServeApi = Callable[..., str]


@pytest.fixture
def serve_api(
    dagster_instance: dg.DagsterInstance,
    api_settings: Callable[..., ApiSettings],  # noqa: F811 (the fixture imported above)
) -> Iterator[ServeApi]:
    """Start the API over HTTP on loopback with the given settings; returns its base URL."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def serve(**overrides: object) -> str:
        """Tests about something else than the limit get room for a few days' downloads."""
        overrides.setdefault("download_limit", 100)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        app = create_app(api_settings(public_base_url=base_url, **overrides), dagster_instance)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, name=f"api-{port}", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.05)
        servers.append((server, thread))
        return base_url

    yield serve
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=30)
