"""The deployment artefacts agree with the code: the environment variables, the commands, the
image, the Helm values and the Kubernetes manifests.

None of these files can be run here (no Docker daemon, no cluster); these tests are what keeps
them true when the code changes. See tests/deploy/artefacts.py for how each file is read.
"""

import re
from datetime import date
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from recordings_api.app import health_live, health_ready
from recordings_cli.local_api import APP_FACTORY
from recordings_dagster.schedules import tenant_day_run_request
from recordings_instance.archives import INSTANCE_ENVIRONMENT
from tests.deploy.artefacts import (
    API,
    CLI,
    CODE,
    DAEMON,
    DEPLOY,
    DEVELOPMENT_ONLY,
    READERS,
    REPO_ROOT,
    WEBSERVER,
    MissingVariableError,
    command_argv,
    compose_raw,
    compose_rendered,
    compose_text,
    container_environment,
    dockerfile_env,
    dockerfile_stages,
    dockerignore_excludes,
    env_sources,
    interpolation_names,
    k8s_documents,
    k8s_object,
    load_yaml,
    read_env_file,
    service_environment,
    variables_read_by_code,
)

pytestmark = pytest.mark.integration

PROD_INSTANCE = DEPLOY / "dagster.prod.yaml"
ENV_EXAMPLE = DEPLOY / "compose.env.example"
HELM_VALUES = DEPLOY / "helm" / "dagster-values.yaml"
# A whole name; `DAGSTER_PG_*` in a comment is a family, not a variable.
VARIABLE = re.compile(r"\b(?:RECORDINGS|DAGSTER)_[A-Z0-9_]*[A-Z0-9]\b(?!\*)")

# Which docker-compose service plays which role.
COMPOSE_SERVICE = {CODE: "dagster-code", DAEMON: "dagster-daemon", WEBSERVER: "dagster-webserver"}
COMPOSE_SERVICE[API] = "api"
DAGSTER_SERVICES = ("dagster-code", "dagster-daemon", "dagster-webserver")


def production_variables(role: str) -> set[str]:
    return {name for name, roles in READERS.items() if role in roles} - DEVELOPMENT_ONLY


def image_env() -> dict[str, str]:
    return dockerfile_env(dockerfile_stages()[-1])


def example_env() -> dict[str, str]:
    """compose.env.example as an operator would fill it: every required value given."""
    env = read_env_file(ENV_EXAMPLE)
    for name, operators in interpolation_names(compose_text()).items():
        if any(op.endswith("?") for op in operators) and not env.get(name):
            env[name] = f"example-{name.lower().replace('_', '-')}"
    return env


# --- the variables -------------------------------------------------------------------------


def test_the_table_of_variables_is_what_the_code_reads() -> None:
    # INSTANCE_ENVIRONMENT: what Dagster itself reads and the deployment must set.
    read = (
        set(variables_read_by_code())
        | env_sources(load_yaml(PROD_INSTANCE))
        | set(INSTANCE_ENVIRONMENT)
    )
    assert set(READERS) == read, (
        f"read by the code but not listed: {sorted(read - set(READERS))}; "
        f"listed but read nowhere: {sorted(set(READERS) - read)}. Update READERS in "
        "tests/deploy/artefacts.py, the README's configuration table and the deployment files."
    )


def test_the_readme_configuration_table_lists_every_variable() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    listed: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            listed |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    assert listed == set(READERS), (
        f"missing from the README: {sorted(set(READERS) - listed)}; "
        f"in the README but not read: {sorted(listed - set(READERS))}"
    )


def test_every_variable_named_in_the_artefacts_is_one_the_code_reads() -> None:
    """No typo survives: a misspelt RECORDINGS_* name would be silently ignored by the code."""
    files = [
        REPO_ROOT / "docker-compose.yml",
        REPO_ROOT / "Dockerfile",
        ENV_EXAMPLE,
        HELM_VALUES,
        PROD_INSTANCE,
        *sorted((DEPLOY / "k8s").glob("*.yaml")),
        *sorted((DEPLOY / "minio").glob("*.sh")),
        *sorted((DEPLOY / "postgres").glob("*.sh")),
    ]
    for path in files:
        named = set(VARIABLE.findall(path.read_text(encoding="utf-8")))
        unknown = named - set(READERS)
        assert not unknown, f"{path.relative_to(REPO_ROOT)} names {sorted(unknown)}"


def test_development_settings_stay_out_of_production() -> None:
    for path in [
        REPO_ROOT / "docker-compose.yml",
        ENV_EXAMPLE,
        HELM_VALUES,
        *sorted((DEPLOY / "k8s").glob("*.yaml")),
    ]:
        named = set(VARIABLE.findall(path.read_text(encoding="utf-8")))
        assert not named & DEVELOPMENT_ONLY, f"{path.name} sets {sorted(named & DEVELOPMENT_ONLY)}"


# --- docker-compose ------------------------------------------------------------------------


def test_compose_gives_each_process_every_variable_it_reads() -> None:
    services = compose_raw()["services"]
    for role, service in COMPOSE_SERVICE.items():
        available = set(service_environment(services[service])) | set(image_env())
        missing = production_variables(role) - available
        assert not missing, f"compose service {service} lacks {sorted(missing)}"
    migrate = set(service_environment(services["migrate"])) | set(image_env())
    instance_variables = env_sources(load_yaml(PROD_INSTANCE)) | {"DAGSTER_HOME"}
    assert {"RECORDINGS_DATABASE_URL"} | instance_variables <= migrate


def test_compose_secrets_come_from_variables_never_literals() -> None:
    secrets = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|LINK_KEYS|WEBHOOK_KEY|DATABASE_URL")
    services = compose_raw()["services"]
    for name, service in services.items():
        for key, value in service_environment(service).items():
            if secrets.search(key):
                assert "${" in value, f"{name}: {key} is a literal; interpolate it"
    for name, operators in interpolation_names(compose_text()).items():
        if secrets.search(name):
            assert operators == {":?"}, f"secret {name} must be required: ${{{name}:?...}}"


def test_the_env_example_lists_exactly_what_compose_interpolates() -> None:
    interpolated = set(interpolation_names(compose_text()))
    example = set(read_env_file(ENV_EXAMPLE))
    assert interpolated == example, (
        f"not in compose.env.example: {sorted(interpolated - example)}; "
        f"not used by docker-compose.yml: {sorted(example - interpolated)}"
    )
    with pytest.raises(MissingVariableError):
        compose_rendered(read_env_file(ENV_EXAMPLE))  # the example's secrets are empty


def test_compose_renders_consistent_settings() -> None:
    services = compose_rendered(example_env())["services"]
    postgres = service_environment(services["postgres"])
    code = service_environment(services["dagster-code"])
    api = service_environment(services["api"])

    # Dagster's EnvVar-bound resources have no defaults: those variables must not be empty
    # (the optional ones, read with os.environ.get, may be).
    resources = (REPO_ROOT / "recordings_dagster" / "resources.py").read_text()
    bound = set(re.findall(r'EnvVar\("([A-Z_]+)"\)', resources))
    assert bound and all(code.get(name) for name in bound), {n: code.get(n) for n in bound}

    for service in (code, api):
        url = make_url(service["RECORDINGS_DATABASE_URL"])
        assert url.drivername == "postgresql+psycopg"
        assert url.host == "postgres"
        assert url.database == postgres["APP_DB_NAME"]
        assert url.username == postgres["APP_DB_USER"]
        assert url.password == postgres["APP_DB_PASSWORD"]
    for name in (*DAGSTER_SERVICES, "api", "migrate"):
        env = service_environment(services[name])
        assert env["DAGSTER_PG_HOST"] == "postgres"
        assert int(env["DAGSTER_PG_PORT"]) == 5432
        for key in ("DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"):
            assert env[key] == postgres[key], (name, key)
    # The internal endpoint is the minio service; clients get the public one.
    assert api["RECORDINGS_S3_ENDPOINT"] == "http://minio:9000"
    assert api["RECORDINGS_S3_PUBLIC_ENDPOINT"] != api["RECORDINGS_S3_ENDPOINT"]
    # The buckets minio-init creates are the ones the pipeline and the API use.
    init = service_environment(services["minio-init"])
    assert init["RECORDINGS_ARCHIVE_BUCKET"] == code["RECORDINGS_ARCHIVE_BUCKET"]
    assert init["RECORDINGS_ARCHIVE_BUCKET"] == api["RECORDINGS_ARCHIVE_BUCKET"]
    assert init["RECORDINGS_S3_ACCESS_KEY"] == code["RECORDINGS_S3_ACCESS_KEY"]


def test_compose_commands_match_the_code_and_the_workspace() -> None:
    services = compose_raw()["services"]
    workspace = load_yaml(DEPLOY / "workspace.yaml")["load_from"]
    assert len(workspace) == 1
    server = workspace[0]["grpc_server"]

    code = command_argv(services["dagster-code"]["command"])
    assert code[:3] == ["dagster", "api", "grpc"]
    options = dict(zip(code[3::2], code[4::2], strict=True))
    assert options == {
        "-m": "recordings_dagster.definitions",
        "-a": "defs",
        "-h": "0.0.0.0",  # noqa: S104 - the container listens on its own interfaces
        "-p": str(server["port"]),
    }
    assert server["host"] == "dagster-code"  # the compose service name
    assert server["location_name"] == "recordings"

    workspace_in_image = f"{image_env()['DAGSTER_HOME']}/workspace.yaml"
    assert command_argv(services["dagster-webserver"]["command"])[:1] == ["dagster-webserver"]
    assert command_argv(services["dagster-daemon"]["command"])[:2] == ["dagster-daemon", "run"]
    for name in ("dagster-webserver", "dagster-daemon"):
        argv = command_argv(services[name]["command"])
        assert argv[argv.index("-w") + 1] == workspace_in_image

    api = command_argv(services["api"]["command"])
    assert api[:3] == ["uvicorn", "--factory", APP_FACTORY]
    assert "--workers" in api

    migrate = " ".join(command_argv(services["migrate"]["command"]))
    assert "recordings db upgrade" in migrate and "dagster instance migrate" in migrate
    for name in ("dagster-code", "api"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
        assert services[name]["depends_on"]["minio-init"] == {
            "condition": "service_completed_successfully"
        }


# --- the image -----------------------------------------------------------------------------


def test_the_image_installs_the_runtime_and_the_production_instance() -> None:
    stages = dockerfile_stages()
    runtime = stages[-1]
    assert all(stage[0].arguments.split()[0] == "python:3.11-slim-bookworm" for stage in stages)

    runs = " ".join(i.arguments for i in runtime if i.keyword == "RUN")
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    system = re.search(r"^SYSTEM_PACKAGES := (.+)$", makefile, re.MULTILINE)
    assert system, "Makefile SYSTEM_PACKAGES"
    runtime_libraries = [name for name in system.group(1).split() if name.startswith("lib")]
    assert runtime_libraries and all(f" {lib}" in runs for lib in runtime_libraries)
    assert "pip install -c /tmp/constraints.txt" in runs

    home = image_env()["DAGSTER_HOME"]
    copies = {
        tuple(i.arguments.split()[-2:])
        for i in runtime
        if i.keyword == "COPY" and "--" not in i.arguments
    }
    assert ("deploy/dagster.prod.yaml", f"{home}/dagster.yaml") in copies
    assert ("deploy/workspace.yaml", f"{home}/workspace.yaml") in copies
    assert int(image_env()["DAGSTER_MAX_CONCURRENT_RUNS"]) >= 1

    users = [i.arguments for i in runtime if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}


def test_the_build_context_leaves_out_local_state_and_secrets() -> None:
    for path in [
        ".env",
        ".venv/bin/python",
        ".local/recordings.db",
        ".git/HEAD",
        "deploy/compose.env",
        "tests/conftest.py",
        "recordings/__pycache__/cli.pyc",
    ]:
        assert dockerignore_excludes(path), path
    for stage in dockerfile_stages():
        for instruction in stage:
            if instruction.keyword == "COPY" and "--from" not in instruction.arguments:
                for source in instruction.arguments.split()[:-1]:
                    assert not dockerignore_excludes(source), f"COPY {source} is ignored"


# --- Kubernetes ----------------------------------------------------------------------------


def helm_values() -> dict[str, Any]:
    return load_yaml(HELM_VALUES)


# Keys of the chart's values schema (dagster-io/dagster, helm/dagster/schema: values.py and
# subschema daemon.py, webserver.py, run_launcher.py, postgresql.py, user_deployments.py) and
# the run monitoring keys its instance template reads; the values file may use nothing else.
CHART_TOP_LEVEL = {
    "dagsterWebserver", "dagster-user-deployments", "postgresql",
    "generatePostgresqlPasswordSecret", "generateCeleryConfigSecret", "rabbitmq", "redis",
    "flower", "ingress", "imagePullSecrets", "computeLogManager", "scheduler", "runLauncher",
    "pythonLogs", "dagsterDaemon", "busybox", "migrate", "telemetry", "serviceAccount", "global",
    "retention", "additionalInstanceConfig",
}  # fmt: skip
CHART_DAEMON = {
    "enabled", "image", "runCoordinator", "heartbeatTolerance", "env", "envConfigMaps",
    "envSecrets", "deploymentLabels", "labels", "nodeSelector", "affinity", "tolerations",
    "podSecurityContext", "securityContext", "resources", "checkDbReadyInitContainer",
    "livenessProbe", "readinessProbe", "startupProbe", "annotations", "runMonitoring",
    "runRetries", "sensors", "schedules", "backfills", "schedulerName", "logFormat",
    "volumeMounts", "volumes", "initContainerResources", "extraContainers",
    "extraPrependedInitContainers",
}  # fmt: skip
CHART_QUEUED_RUN_COORDINATOR = {
    "maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds", "dequeueNumWorkers",
    "dequeueUseThreads", "blockOpConcurrencyLimitedRuns",
}  # fmt: skip
CHART_RUN_MONITORING = {
    "enabled", "startTimeoutSeconds", "cancelTimeoutSeconds", "maxResumeRunAttempts",
    "pollIntervalSeconds", "freeSlotsAfterRunEndSeconds",
}  # fmt: skip
CHART_RUN_RETRIES = {"enabled", "maxRetries", "retryOnAssetOrOpFailure"}
# daemon.py's Schedules; the instance template writes them as `schedules:` use_threads,
# num_workers, num_submit_workers.
CHART_SCHEDULES = {"useThreads", "numWorkers", "numSubmitWorkers"}
CHART_WEBSERVER = {
    "replicaCount", "image", "nameOverride", "pathPrefix", "service", "workspace", "env",
    "envConfigMaps", "envSecrets", "deploymentLabels", "labels", "nodeSelector", "affinity",
    "tolerations", "podSecurityContext", "securityContext", "resources", "readinessProbe",
    "livenessProbe", "startupProbe", "annotations", "enableReadOnly", "dbStatementTimeout",
    "dbPoolRecycle", "logLevel", "schedulerName", "volumeMounts", "volumes",
}  # fmt: skip
CHART_K8S_RUN_LAUNCHER = {
    "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
    "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels",
    "failPodOnRunFailure", "resources", "schedulerName", "securityContext", "runK8sConfig",
}  # fmt: skip
CHART_POSTGRESQL = {
    "image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword",
    "postgresqlDatabase", "postgresqlParams", "postgresqlScheme", "service",
}  # fmt: skip
CHART_USER_DEPLOYMENT = {
    "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns",
    "deploymentNamespace", "port", "env", "envConfigMaps", "envSecrets", "annotations",
    "nodeSelector", "affinity", "tolerations", "podSecurityContext", "securityContext",
    "resources", "livenessProbe", "readinessProbe", "startupProbe", "labels", "volumeMounts",
    "volumes", "schedulerName",
}  # fmt: skip


def the_user_deployment() -> dict[str, Any]:
    deployments = helm_values()["dagster-user-deployments"]["deployments"]
    assert len(deployments) == 1
    return deployments[0]


def test_the_helm_values_use_only_the_charts_keys() -> None:
    values = helm_values()
    assert set(values) <= CHART_TOP_LEVEL
    daemon = values["dagsterDaemon"]
    assert set(daemon) <= CHART_DAEMON
    assert set(daemon["runCoordinator"]["config"]["queuedRunCoordinator"]) <= (
        CHART_QUEUED_RUN_COORDINATOR
    )
    assert set(daemon["runMonitoring"]) <= CHART_RUN_MONITORING
    assert set(daemon["runRetries"]) <= CHART_RUN_RETRIES
    assert set(daemon["schedules"]) <= CHART_SCHEDULES
    assert set(values["dagsterWebserver"]) <= CHART_WEBSERVER
    assert set(values["runLauncher"]["config"]["k8sRunLauncher"]) <= CHART_K8S_RUN_LAUNCHER
    assert set(values["postgresql"]) <= CHART_POSTGRESQL
    assert set(the_user_deployment()) <= CHART_USER_DEPLOYMENT


def test_the_helm_values_carry_the_production_instance_settings() -> None:
    values = helm_values()
    prod = load_yaml(PROD_INSTANCE)
    daemon = values["dagsterDaemon"]

    coordinator = daemon["runCoordinator"]
    assert coordinator["enabled"] is True and coordinator["type"] == "QueuedRunCoordinator"
    queued = coordinator["config"]["queuedRunCoordinator"]
    assert isinstance(queued["maxConcurrentRuns"], int) and queued["maxConcurrentRuns"] > 0
    assert (
        queued["tagConcurrencyLimits"]
        == prod["run_coordinator"]["config"]["tag_concurrency_limits"]
    )
    tenant_tag = queued["tagConcurrencyLimits"][0]["key"]
    assert tenant_tag in tenant_day_run_request("acme", date(2025, 1, 1)).tags

    retries = daemon["runRetries"]
    root = load_yaml(REPO_ROOT / "dagster.yaml")["run_retries"]
    expected = {
        "enabled": root["enabled"],
        "maxRetries": root["max_retries"],
        "retryOnAssetOrOpFailure": root["retry_on_asset_or_op_failure"],
    }
    assert retries == expected
    assert prod["run_retries"] == root

    # Threaded schedule submission, as production's instance: the tick at 10,000 tenants.
    schedules = daemon["schedules"]
    assert {
        "use_threads": schedules["useThreads"],
        "num_workers": schedules["numWorkers"],
        "num_submit_workers": schedules["numSubmitWorkers"],
    } == prod["schedules"]

    monitoring = daemon["runMonitoring"]
    assert monitoring["enabled"] is True
    assert monitoring["maxResumeRunAttempts"] > 0  # K8sRunLauncher can resume a lost pod
    assert monitoring["startTimeoutSeconds"] >= prod["run_monitoring"]["start_timeout_seconds"]

    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["telemetry"] == {"enabled": False} == prod["telemetry"]


def _env_list(env: list[dict[str, Any]] | dict[str, str] | None) -> dict[str, Any]:
    """A chart `env` (a list of EnvVars, or a dict of name to value) by name."""
    if isinstance(env, dict):
        return {name: {"name": name, "value": value} for name, value in env.items()}
    return {entry["name"]: entry for entry in env or []}


def test_every_process_that_creates_runs_plans_them_in_one_event_on_kubernetes() -> None:
    """INSTANCE_ENVIRONMENT in the daemon (the tick, retries, backfills), the webserver (the UI's
    launches), the code location and every run pod. The daemon and the webserver run Dagster's
    own image, so only these values can give it to them."""
    values = helm_values()
    processes = {
        "dagsterDaemon": values["dagsterDaemon"].get("env"),
        "dagsterWebserver": values["dagsterWebserver"].get("env"),
        "the code location": the_user_deployment().get("env"),
    }
    run_pods = dict(
        item.split("=", 1)
        for item in values["runLauncher"]["config"]["k8sRunLauncher"].get("envVars", [])
    )
    for name, value in INSTANCE_ENVIRONMENT.items():
        for process, env in processes.items():
            assert _env_list(env).get(name) == {"name": name, "value": value}, (process, name)
        assert run_pods.get(name) == value, ("run pods (k8sRunLauncher.envVars)", name)


def test_the_code_location_on_kubernetes_matches_compose_and_the_code() -> None:
    deployment = the_user_deployment()
    compose_code = command_argv(compose_raw()["services"]["dagster-code"]["command"])
    args = deployment["dagsterApiGrpcArgs"]
    assert compose_code[3 : 3 + len(args)] == args
    assert (
        deployment["port"]
        == load_yaml(DEPLOY / "workspace.yaml")["load_from"][0]["grpc_server"]["port"]
    )
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    # With includeConfigInLaunchedRuns the chart copies these into every run pod, where they
    # would override the run launcher's resources.
    assert "resources" not in deployment

    available = container_environment(
        deployment.get("env"), [m["name"] for m in deployment.get("envConfigMaps", [])]
    )
    needed = {v for v in production_variables(CODE) if v.startswith("RECORDINGS_")}
    assert needed <= set(available), sorted(needed - set(available))
    # The nightly packing, read by the code location when it loads (the schedule packs by it).
    packing = {"RECORDINGS_MAX_TENANTS_PER_RUN", "RECORDINGS_MAX_AUDIO_SECONDS_PER_RUN"}
    assert packing <= set(available) and packing <= needed
    for name, source in available.items():
        if "valueFrom" in source:
            reference = source["valueFrom"]["secretKeyRef"]
            assert reference == {"name": "recordings-secrets", "key": name}


def test_the_helm_postgresql_is_the_database_the_api_reads() -> None:
    values = helm_values()
    postgresql = values["postgresql"]
    assert postgresql["enabled"] is False
    assert values["generatePostgresqlPasswordSecret"] is False
    config = k8s_object("ConfigMap", "recordings-config")["data"]
    assert config["DAGSTER_PG_HOST"] == postgresql["postgresqlHost"]
    assert config["DAGSTER_PG_USERNAME"] == postgresql["postgresqlUsername"]
    assert config["DAGSTER_PG_DB"] == postgresql["postgresqlDatabase"]
    assert int(config["DAGSTER_PG_PORT"]) == postgresql["service"]["port"]
    # The same driver as the production instance file (psycopg2; see its comment).
    scheme = load_yaml(PROD_INSTANCE)["storage"]["postgres"]["postgres_db"]["scheme"]
    assert postgresql["postgresqlScheme"] == scheme == "postgresql+psycopg2"

    container = k8s_object("Deployment", "recordings-api")["spec"]["template"]["spec"][
        "containers"
    ][0]
    password = next(e for e in container["env"] if e["name"] == "DAGSTER_PG_PASSWORD")
    assert password["valueFrom"]["secretKeyRef"] == {
        "name": values["global"]["postgresqlSecretName"],
        "key": "postgresql-password",  # the key the chart reads
    }


def test_the_api_deployment_probes_and_environment() -> None:
    deployment = k8s_object("Deployment", "recordings-api")
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    pod = spec["template"]["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    (container,) = pod["containers"]

    argv = command_argv(container["command"])
    assert argv[:3] == ["uvicorn", "--factory", APP_FACTORY]
    port = int(argv[argv.index("--port") + 1])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == port

    assert container["readinessProbe"]["httpGet"] == {
        "path": next(iter(health_ready.paths)),
        "port": "http",
    }
    assert container["livenessProbe"]["httpGet"] == {
        "path": next(iter(health_live.paths)),
        "port": "http",
    }

    available = container_environment(
        container["env"], [s["configMapRef"]["name"] for s in container["envFrom"]]
    )
    missing = production_variables(API) - set(available) - set(image_env())
    assert not missing, sorted(missing)
    jwks = available["RECORDINGS_JWT_JWKS_FILE"]["value"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert jwks.rsplit("/", 1)[0] in mounts

    service = k8s_object("Service", "recordings-api")
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {"http"}


def test_every_kubernetes_object_is_well_formed_and_secrets_are_references() -> None:
    kinds = {doc["kind"] for doc in k8s_documents()}
    assert {"Deployment", "Service", "ConfigMap", "Job"} <= kinds
    assert "Secret" not in kinds  # created with kubectl, never written into a file
    for doc in k8s_documents():
        assert doc["apiVersion"] and doc["metadata"]["name"]
    config = k8s_object("ConfigMap", "recordings-config")["data"]
    for key in config:
        assert not re.search(
            r"PASSWORD|SECRET|ACCESS_KEY|LINK_KEYS|WEBHOOK_KEY|DATABASE_URL", key
        ), key

    job = k8s_object("Job", "recordings-db-upgrade")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert command_argv(container["command"]) == ["recordings", "db", "upgrade"]
    assert [e["name"] for e in container["env"]] == ["RECORDINGS_DATABASE_URL"]
    assert CLI in READERS["RECORDINGS_DATABASE_URL"]
