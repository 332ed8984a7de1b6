"""deploy/dagster.prod.yaml and deploy/workspace.yaml, loaded by Dagster itself on a real
PostgreSQL server: storage, the run queue and its limits, retries, run monitoring, and the code
server started with docker-compose.yml's own command."""

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from dagster._check import CheckError
from dagster._core.remote_origin import (
    GrpcServerCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus, RunsFilter
from dagster._core.utils import make_new_run_id
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)
from dagster._grpc.client import DagsterGrpcClient
from dagster._utils import find_free_port
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from recordings.keys import tenant_shard
from recordings_dagster.definitions import defs
from recordings_dagster.jobs import tenant_archives_job_name
from recordings_dagster.partitions import tenant_partitions_name
from recordings_dagster.schedules import tenant_day_run_request
from tests.deploy.artefacts import (
    DEPLOY,
    command_argv,
    compose_raw,
    compose_rendered,
    load_yaml,
    read_env_file,
    service_environment,
)
from tests.postgres import postgres_bindir

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 24)


@pytest.fixture(scope="module")
def dagster_database(postgres_admin_url: str) -> Iterator[dict[str, str]]:
    """A role and a database for Dagster on the session's PostgreSQL server, as the DAGSTER_PG_*
    variables deploy/dagster.prod.yaml reads."""
    suffix = secrets.token_hex(4)
    role, database, password = f"dagster_{suffix}", f"dagster_{suffix}", secrets.token_hex(16)
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'"))
        conn.execute(sa.text(f'CREATE DATABASE "{database}" OWNER "{role}"'))
    url = sa.make_url(postgres_admin_url)
    yield {
        "DAGSTER_PG_HOST": str(url.host),
        "DAGSTER_PG_PORT": str(url.port),
        "DAGSTER_PG_USERNAME": role,
        "DAGSTER_PG_PASSWORD": password,
        "DAGSTER_PG_DB": database,
    }
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE "{database}" WITH (FORCE)'))
        conn.execute(sa.text(f'DROP ROLE "{role}"'))
    admin.dispose()


@pytest.fixture
def production_home(
    tmp_path: Path, dagster_database: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Path:
    """DAGSTER_HOME laid out as the image lays it out, with the variables compose sets."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(DEPLOY / "dagster.prod.yaml", home / "dagster.yaml")
    shutil.copyfile(DEPLOY / "workspace.yaml", home / "workspace.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_MAX_CONCURRENT_RUNS", "10")
    for key, value in dagster_database.items():
        monkeypatch.setenv(key, value)
    return home


@pytest.fixture
def instance(production_home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.get() as loaded:
        # The runs of earlier tests share the database: start each test from an empty queue.
        for run in loaded.get_runs():
            loaded.delete_run(run.run_id)
        yield loaded


def add_run(instance: dg.DagsterInstance, tenant_id: str, status: DagsterRunStatus) -> str:
    """A run as the nightly schedule requests it (its tags), from the code location
    deploy/workspace.yaml names, stored with `status`."""
    request = tenant_day_run_request(tenant_id, DAY)
    job_name = tenant_archives_job_name(tenant_id)
    assert request.job_name == job_name
    server = load_yaml(DEPLOY / "workspace.yaml")["load_from"][0]["grpc_server"]
    location = GrpcServerCodeLocationOrigin(
        host=server["host"], port=server["port"], location_name=server["location_name"]
    )
    run = DagsterRun(
        job_name=job_name,
        run_id=make_new_run_id(),
        tags=request.tags,
        status=status,
        remote_job_origin=RemoteJobOrigin(
            repository_origin=RemoteRepositoryOrigin(
                code_location_origin=location, repository_name="__repository__"
            ),
            job_name=job_name,
        ),
    )
    instance.add_run(run)
    return run.run_id


def test_the_production_instance_stores_in_postgresql(instance: dg.DagsterInstance) -> None:
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    assert instance.get_runs() == []

    @dg.op
    def noop() -> None:
        pass

    @dg.job
    def smoke() -> None:
        noop()

    tags = tenant_day_run_request("acme", DAY).tags
    result = smoke.execute_in_process(instance=instance, tags=tags)
    assert result.success
    (stored,) = instance.get_runs(RunsFilter(tags={"recordings/tenant": "acme"}))
    assert stored.run_id == result.run_id
    assert stored.status == DagsterRunStatus.SUCCESS
    assert instance.get_records_for_run(result.run_id).records  # the event log

    partitions = tenant_partitions_name(tenant_shard("acme"))  # globex's too
    instance.add_dynamic_partitions(partitions, ["acme", "globex"])
    assert set(instance.get_dynamic_partitions(partitions)) >= {"acme", "globex"}


def test_queue_retries_and_monitoring_are_configured(instance: dg.DagsterInstance) -> None:
    assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
    queue = instance.get_concurrency_config().run_queue_config
    assert queue is not None
    assert queue.max_concurrent_runs == 10  # from DAGSTER_MAX_CONCURRENT_RUNS
    assert queue.tag_concurrency_limits == [
        {"key": "recordings/tenant", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    ]
    assert instance.run_retries_enabled
    assert instance.run_retries_max_retries == 2
    assert instance.run_retries_retry_on_asset_or_op_failure
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_start_timeout_seconds == 300
    assert instance.run_monitoring_max_resume_run_attempts == 0
    assert not instance.run_launcher.supports_resume_run  # why it has to be 0 here


def test_the_queue_starts_one_run_per_tenant(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's own choice of runs to start, on runs tagged as the schedule tags them."""
    add_run(instance, "acme", DagsterRunStatus.STARTED)
    acme_queued = add_run(instance, "acme", DagsterRunStatus.QUEUED)
    globex_first = add_run(instance, "globex", DagsterRunStatus.QUEUED)
    globex_second = add_run(instance, "globex", DagsterRunStatus.QUEUED)
    initech = add_run(instance, "initech", DagsterRunStatus.QUEUED)

    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    chosen = daemon._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None)
    assert [run.run_id for run in chosen] == [globex_first, initech]
    assert acme_queued not in {run.run_id for run in chosen}  # acme already has a run going
    assert globex_second not in {run.run_id for run in chosen}

    # The global limit comes from the environment: with 2, one run in progress leaves one slot.
    monkeypatch.setenv("DAGSTER_MAX_CONCURRENT_RUNS", "2")
    with dg.DagsterInstance.get() as limited:
        chosen = daemon._get_runs_to_dequeue(limited, limited.get_concurrency_config(), None)
    assert [run.run_id for run in chosen] == [globex_first]


def test_dagster_refuses_resuming_runs_with_this_run_launcher(production_home: Path) -> None:
    """max_resume_run_attempts stays 0 in dagster.prod.yaml: the default run launcher cannot
    resume, and Dagster refuses the combination at startup."""
    config = load_yaml(production_home / "dagster.yaml")
    config["run_monitoring"]["max_resume_run_attempts"] = 2
    (production_home / "dagster.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(CheckError, match="does not support resuming runs"):
        dg.DagsterInstance.get()


@pytest.mark.slow
def test_the_webserver_and_daemon_load_the_code_server_as_compose_starts_it(
    production_home: Path, tmp_path: Path
) -> None:
    """docker-compose.yml's dagster-code command, run as is (on a free loopback port), serves
    the definitions; deploy/workspace.yaml (host pointed at loopback) loads them from it."""
    port = find_free_port()
    argv = command_argv(compose_raw()["services"]["dagster-code"]["command"])
    argv[argv.index("-h") + 1] = "127.0.0.1"
    argv[argv.index("-p") + 1] = str(port)
    executable = Path(sys.executable).parent / argv[0]
    env = {
        **os.environ,
        "RECORDINGS_DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}",
        "RECORDINGS_S3_ENDPOINT": "http://127.0.0.1:9",
        "RECORDINGS_S3_ACCESS_KEY": "unused",
        "RECORDINGS_S3_SECRET_KEY": "unused-unused",
        "RECORDINGS_ARCHIVE_BUCKET": "conversation-archives",
    }
    log = (tmp_path / "code-server.log").open("wb")
    server = subprocess.Popen(
        [str(executable), *argv[1:]], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        client = DagsterGrpcClient(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "code-server.log").read_text()
            try:
                client.ping("")
                break
            except Exception:
                assert time.monotonic() < deadline, "the code server did not answer in 120 s"
                time.sleep(0.5)

        workspace = load_yaml(production_home / "workspace.yaml")
        (entry,) = workspace["load_from"]
        entry["grpc_server"]["host"] = "127.0.0.1"
        entry["grpc_server"]["port"] = port
        loopback = tmp_path / "workspace.yaml"
        loopback.write_text(yaml.safe_dump(workspace), encoding="utf-8")

        with dg.DagsterInstance.get() as instance:
            target = WorkspaceFileTarget(paths=[str(loopback)])
            with WorkspaceProcessContext(instance, target) as context:
                request = context.create_request_context()
                location_entry = request.get_code_location_entries()["recordings"]
                assert location_entry.load_error is None, location_entry.load_error
                location = request.get_code_location("recordings")
                (repository,) = location.get_repositories().values()
                assert {job.name for job in repository.get_all_jobs()} >= {
                    job.name for job in defs.jobs or []
                }
                assert {s.name for s in repository.get_schedules()} == {
                    s.name for s in defs.schedules or []
                }
                assert {s.name for s in repository.get_sensors()} == {
                    s.name for s in defs.sensors or []
                }
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.mark.slow
def test_the_compose_database_bootstrap_and_migrate_service(
    postgres_admin_url: str, production_home: Path
) -> None:
    """deploy/postgres/init-databases.sh (as the postgres image runs it) creates the two roles
    and databases; the migrate service's command, with the environment compose gives it, then
    builds both schemas as those roles."""
    admin = sa.make_url(postgres_admin_url)
    suffix = secrets.token_hex(4)
    settings = {
        **read_env_file(DEPLOY / "compose.env.example"),
        "POSTGRES_PASSWORD": "unused-with-trust-auth",
        "DAGSTER_PG_USERNAME": f"dagster_{suffix}",
        "DAGSTER_PG_PASSWORD": secrets.token_hex(12),
        "DAGSTER_PG_DB": f"dagster_{suffix}",
        "APP_DB_USER": f"recordings_{suffix}",
        "APP_DB_PASSWORD": secrets.token_hex(12),
        "APP_DB_NAME": f"recordings_{suffix}",
        "MINIO_ROOT_USER": "unused",
        "MINIO_ROOT_PASSWORD": "unused",
        "RECORDINGS_S3_ACCESS_KEY": "unused",
        "RECORDINGS_S3_SECRET_KEY": "unused",
        "RECORDINGS_LINK_KEYS": "unused",
        "RECORDINGS_WEBHOOK_KEY": "unused",
        "RECORDINGS_PUBLIC_BASE_URL": "https://recordings.example.com",
        "RECORDINGS_S3_PUBLIC_ENDPOINT": "https://s3.example.com",
        "JWKS_FILE": "/dev/null",
    }
    services = compose_rendered(settings)["services"]
    path = f"{postgres_bindir()}:{Path(sys.executable).parent}:{os.environ['PATH']}"
    local = {"PGHOST": str(admin.host), "PGPORT": str(admin.port), "PATH": path}

    postgres_env = service_environment(services["postgres"])
    init = subprocess.run(
        ["sh", str(DEPLOY / "postgres" / "init-databases.sh")],
        env={**local, **postgres_env, "POSTGRES_USER": str(admin.username)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert init.returncode == 0, init.stderr

    migrate = services["migrate"]
    env = service_environment(migrate)
    # The service names resolve inside compose only; here the server listens on loopback.
    url = sa.make_url(env["RECORDINGS_DATABASE_URL"])
    env["RECORDINGS_DATABASE_URL"] = url.set(host=admin.host, port=admin.port).render_as_string(
        hide_password=False
    )
    env["DAGSTER_PG_HOST"], env["DAGSTER_PG_PORT"] = str(admin.host), str(admin.port)
    argv = command_argv(migrate["command"])
    result = subprocess.run(
        argv,
        env={**local, **env, "DAGSTER_HOME": str(production_home), "HOME": str(production_home)},
        cwd=production_home,  # as in the image: no project folder, no .env
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    with sa.create_engine(env["RECORDINGS_DATABASE_URL"]).connect() as app:
        assert app.execute(sa.text("SELECT current_user")).scalar() == settings["APP_DB_USER"]
        assert app.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    dagster_url = url.set(
        drivername="postgresql+psycopg",
        username=settings["DAGSTER_PG_USERNAME"],
        password=settings["DAGSTER_PG_PASSWORD"],
        host=admin.host,
        port=admin.port,
        database=settings["DAGSTER_PG_DB"],
    )
    engine = sa.create_engine(dagster_url)
    with engine.connect() as dagster_db:
        tables = set(sa.inspect(dagster_db).get_table_names())
        assert {"runs", "event_logs", "jobs", "alembic_version"} <= tables
        owners = dagster_db.execute(
            sa.text("SELECT DISTINCT tableowner FROM pg_tables WHERE tablename = 'runs'")
        ).scalars()
        assert list(owners) == [settings["DAGSTER_PG_USERNAME"]]
    engine.dispose()
    drop = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with drop.connect() as conn:
        for database in (settings["APP_DB_NAME"], settings["DAGSTER_PG_DB"]):
            conn.execute(sa.text(f'DROP DATABASE "{database}" WITH (FORCE)'))
        for role in (settings["APP_DB_USER"], settings["DAGSTER_PG_USERNAME"]):
            conn.execute(sa.text(f'DROP ROLE "{role}"'))
    drop.dispose()
