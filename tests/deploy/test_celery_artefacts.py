"""The Celery run engine's artefacts agree with production's and with dagster-celery
(docs/DISTRIBUTED.md): deploy/dagster.celery.yaml is deploy/dagster.prod.yaml plus its run
launcher, Dagster loads it and builds the launcher, the workers' settings module is the one
dagster-celery's worker app reads, deploy/compose.celery.yml gives the workers what the code
server has, and the reason run resumption stays off is still true."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._core.launcher import ResumeRunContext

from tests.deploy.artefacts import (
    CODE,
    DEPLOY,
    DEVELOPMENT_ONLY,
    READERS,
    compose_raw,
    dockerfile_env,
    dockerfile_stages,
    service_environment,
)

CELERY_INSTANCE = DEPLOY / "dagster.celery.yaml"
PROD_INSTANCE = DEPLOY / "dagster.prod.yaml"
COMPOSE_CELERY = DEPLOY / "compose.celery.yml"
WORKER_CONFIG = DEPLOY / "celery"
BROKER = "redis://127.0.0.1:1/0"  # never reached: nothing here connects


@dg.op
def noop() -> None:
    pass


@dg.job
def smoke() -> None:
    noop()


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture
def celery_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", BROKER)
    monkeypatch.setenv("CELERY_RESULT_BACKEND", BROKER)


def test_the_celery_instance_is_production_s_plus_its_run_launcher() -> None:
    celery, prod = load(CELERY_INSTANCE), load(PROD_INSTANCE)
    launcher = celery.pop("run_launcher")
    assert celery == prod, "every section but run_launcher must stay as deploy/dagster.prod.yaml"
    assert (launcher["module"], launcher["class"]) == (
        "dagster_celery.launcher",
        "CeleryRunLauncher",
    )
    assert launcher["config"]["broker"] == {"env": "CELERY_BROKER_URL"}
    assert launcher["config"]["backend"] == {"env": "CELERY_RESULT_BACKEND"}
    assert celery["run_monitoring"]["max_resume_run_attempts"] == 0


def test_dagster_loads_the_celery_instance_and_builds_its_launcher(
    tmp_path: Path, celery_env: None
) -> None:
    config = load(CELERY_INSTANCE)
    del config["storage"]  # SQLite in the folder: the storage is production's, tested elsewhere
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    os.environ["DAGSTER_MAX_CONCURRENT_RUNS"] = "2"
    try:
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
            launcher = instance.run_launcher
            assert type(launcher).__name__ == "CeleryRunLauncher"
            assert launcher.supports_check_run_worker_health
            app = launcher.celery  # type: ignore[attr-defined]
            assert app.conf.broker_url == BROKER and app.conf.result_backend == BROKER
            assert instance.run_monitoring_enabled
    finally:
        del os.environ["DAGSTER_MAX_CONCURRENT_RUNS"]


def test_resuming_a_run_still_fails_in_dagster_celery(tmp_path: Path, celery_env: None) -> None:
    """Why max_resume_run_attempts stays 0: dagster-celery 0.29.27's resume_run hands its task an
    argument the task does not take, and Celery refuses it before sending. When an upgrade
    fixes it, this fails: then resuming a killed worker's run can be considered."""
    config = load(CELERY_INSTANCE)
    del config["storage"]
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    os.environ["DAGSTER_MAX_CONCURRENT_RUNS"] = "2"
    try:
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
            origin = dg.reconstructable(smoke).get_python_origin()
            run = instance.create_run_for_job(smoke, job_code_origin=origin)
            assert instance.run_launcher.supports_resume_run  # what it claims
            context = ResumeRunContext(dagster_run=run, workspace=None)
            with pytest.raises(TypeError, match="unexpected keyword argument"):
                instance.run_launcher.resume_run(context)
    finally:
        del os.environ["DAGSTER_MAX_CONCURRENT_RUNS"]


def test_the_worker_app_reads_the_workers_settings_module() -> None:
    """`celery -A dagster_celery.app worker` with deploy/celery on the path, as compose starts
    it: the broker and results from the environment, no prefetch, the run task registered."""
    probe = (
        "from dagster_celery.app import app\n"
        "conf = app.conf\n"
        "print(conf.broker_url, conf.result_backend, conf.worker_disable_prefetch,\n"
        "      conf.worker_prefetch_multiplier, 'execute_job' in app.tasks)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(WORKER_CONFIG), os.environ.get("PYTHONPATH", "")]),
        "CELERY_BROKER_URL": BROKER,
        "CELERY_RESULT_BACKEND": BROKER,
    }
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == [BROKER, BROKER, "True", "1", "True"], result.stderr


def test_compose_gives_the_workers_what_the_code_server_has() -> None:
    override = load(COMPOSE_CELERY)["services"]
    base = compose_raw()["services"]
    # Every process that opens the instance gets the Celery instance file and its two URLs.
    for name in ("migrate", "dagster-code", "dagster-webserver", "dagster-daemon", "api"):
        assert name in base, name
        assert {"CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"} <= set(override[name]["environment"])
        assert any("dagster.celery.yaml:/opt/dagster/home/dagster.yaml" in v
                   for v in override[name]["volumes"]), name  # fmt: skip
    worker = override["dagster-worker"]
    worker_env = service_environment(worker)
    code_env = service_environment(base["dagster-code"])
    assert set(code_env) <= set(worker_env), sorted(set(code_env) - set(worker_env))
    for name, value in code_env.items():
        assert worker_env[name] == value, name
    production = {name for name, roles in READERS.items() if CODE in roles} - DEVELOPMENT_ONLY
    image = dockerfile_env(dockerfile_stages()[-1])  # the worker runs the same image
    assert production <= set(worker_env) | set(image), sorted(production - set(worker_env))
    named = {name for name in worker_env if name.startswith(("RECORDINGS_", "DAGSTER_"))}
    assert named <= set(READERS), sorted(named - set(READERS))
    assert worker["command"][:4] == ["celery", "-A", "dagster_celery.app", "worker"]
    assert worker_env["PYTHONPATH"] == "/opt/dagster/celery"
    assert "./deploy/celery:/opt/dagster/celery:ro" in worker["volumes"]
    assert (WORKER_CONFIG / "dagster_celery_config.py").is_file()
