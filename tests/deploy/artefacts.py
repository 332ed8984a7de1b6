"""Readers for the deployment artefacts and for what the code reads from the environment.

The artefacts (Dockerfile, docker-compose.yml, deploy/) cannot run on the development machine
(no Docker daemon, no cluster), so the tests in this folder hold them to the code instead: the
variables the code reads are found in its syntax tree, the files are parsed, not grepped.
"""

import ast
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from recordings.settings import ENV_PREFIX

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
PACKAGES = ("recordings", "recordings_api", "recordings_dagster", "recordings_cli")

# Roles: which process reads a variable.
CLI = "cli"  # the `recordings` command (migrations, operators)
CODE = "code"  # Dagster code server and the runs it starts (schedule, sensor, asset)
DAEMON = "daemon"  # dagster-daemon
WEBSERVER = "webserver"  # dagster-webserver
API = "api"  # the download API

DAGSTER_INSTANCE = frozenset({CODE, DAEMON, WEBSERVER, API})

# Every variable the code (and the production Dagster instance file) reads, and which processes
# read it. The README's configuration table lists the same variables; a test checks that this
# table, the code and the README agree, so a new variable cannot be added silently.
READERS: Mapping[str, frozenset[str]] = {
    "RECORDINGS_DATABASE_URL": frozenset({CLI, CODE, API}),
    "RECORDINGS_S3_ENDPOINT": frozenset({CLI, CODE, API}),
    "RECORDINGS_S3_ACCESS_KEY": frozenset({CLI, CODE, API}),
    "RECORDINGS_S3_SECRET_KEY": frozenset({CLI, CODE, API}),
    "RECORDINGS_S3_REGION": frozenset({CLI, CODE, API}),
    "RECORDINGS_BUILD_WORKERS": frozenset({CODE}),
    "RECORDINGS_MAX_SOURCE_BYTES": frozenset({CODE}),
    "RECORDINGS_MAX_TENANTS_PER_RUN": frozenset({CODE}),
    "RECORDINGS_MAX_AUDIO_SECONDS_PER_RUN": frozenset({CODE}),
    "RECORDINGS_ARCHIVE_BUCKET": frozenset({CLI, CODE, API}),
    "RECORDINGS_SOURCE_BUCKET": frozenset({CLI}),
    "RECORDINGS_PROJECT_DIR": frozenset({CLI}),
    "RECORDINGS_S3_PUBLIC_ENDPOINT": frozenset({API}),
    "RECORDINGS_PUBLIC_BASE_URL": frozenset({API}),
    "RECORDINGS_LINK_KEYS": frozenset({API}),
    "RECORDINGS_LINK_ACTIVE_KEY": frozenset({API}),
    "RECORDINGS_DOWNLOAD_LIMIT": frozenset({API}),
    "RECORDINGS_WEBHOOK_KEY": frozenset({CODE, API}),
    "RECORDINGS_WEBHOOK_ALLOW_LOOPBACK": frozenset({CODE, API}),
    "RECORDINGS_WEBHOOK_TIMEOUT_SECONDS": frozenset({CODE}),
    "RECORDINGS_JWT_ALGORITHM": frozenset({API}),
    "RECORDINGS_JWT_KEY": frozenset({API}),
    "RECORDINGS_JWT_JWKS_FILE": frozenset({API}),
    "RECORDINGS_JWT_DEV_SECRET": frozenset({CLI, API}),
    "RECORDINGS_JWT_ISSUER": frozenset({CLI, API}),
    "RECORDINGS_JWT_AUDIENCE": frozenset({CLI, API}),
    "RECORDINGS_JWT_TENANT_CLAIM": frozenset({API}),
    "RECORDINGS_JWT_PERMISSION_CLAIMS": frozenset({API}),
    "RECORDINGS_JWT_READ_PERMISSION": frozenset({API}),
    "RECORDINGS_JWT_HOST_PERMISSION": frozenset({API}),
    "RECORDINGS_JWT_WEBHOOK_PERMISSION": frozenset({API}),
    "DAGSTER_HOME": frozenset({CLI}) | DAGSTER_INSTANCE,
    "DAGSTER_PG_HOST": DAGSTER_INSTANCE,
    "DAGSTER_PG_PORT": DAGSTER_INSTANCE,
    "DAGSTER_PG_USERNAME": DAGSTER_INSTANCE,
    "DAGSTER_PG_PASSWORD": DAGSTER_INSTANCE,
    "DAGSTER_PG_DB": DAGSTER_INSTANCE,
    "DAGSTER_MAX_CONCURRENT_RUNS": frozenset({DAEMON, WEBSERVER}),
    # Read by Dagster itself in every process that creates runs (recordings_instance.archives).
    "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": frozenset({CLI, CODE, DAEMON, WEBSERVER}),
}

# Development only: production artefacts must not set them. The HS256 development secret would
# let anyone holding it mint tenant tokens; production verifies the identity provider's keys.
# Loopback webhooks would let a tenant's events reach the service's own host.
DEVELOPMENT_ONLY = frozenset(
    {"RECORDINGS_JWT_DEV_SECRET", "RECORDINGS_PROJECT_DIR", "RECORDINGS_WEBHOOK_ALLOW_LOOPBACK"}
)

_OS_ENV_PREFIXES = (ENV_PREFIX, "DAGSTER_")


def _python_files() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((REPO_ROOT / package).rglob("*.py"))


def _call_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _is_os_environ(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def _first_string(node: ast.Call, constants: dict[str, str]) -> str | None:
    """The call's first argument when it is a string, written out or a module's constant."""
    if not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    if isinstance(first, ast.Name):
        return constants.get(first.id)
    return None


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """A module's `NAME = "..."` assignments, so `EnvVar(KEY_ENV)` is read as its name."""
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def variables_read_by_code() -> dict[str, set[str]]:
    """Environment variables the packages read, each with the files that read it.

    Found in the syntax tree: the settings helpers (`env_value`, `env_or`, `_required`, which
    add the RECORDINGS_ prefix), Dagster's `EnvVar(...)` and `os.environ` / `os.getenv` reads of
    RECORDINGS_* and DAGSTER_* names.
    """
    found: dict[str, set[str]] = {}
    for path in _python_files():
        where = str(path.relative_to(REPO_ROOT))
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=where)
        constants = _string_constants(tree)
        for node in ast.walk(tree):
            name: str | None = None
            if isinstance(node, ast.Call):
                called, literal = _call_name(node), _first_string(node, constants)
                if literal is None:
                    continue
                if called in {"env_value", "env_or", "_required"}:
                    name = ENV_PREFIX + literal
                elif called in {"EnvVar", "env_flag"}:
                    name = literal
                elif called == "getenv" or (
                    called == "get"
                    and isinstance(node.func, ast.Attribute)
                    and _is_os_environ(node.func.value)
                ):
                    name = literal if literal.startswith(_OS_ENV_PREFIXES) else None
            elif (
                isinstance(node, ast.Subscript)
                and _is_os_environ(node.value)
                and isinstance(node.slice, ast.Constant)
                and isinstance(node.slice.value, str)
                and node.slice.value.startswith(_OS_ENV_PREFIXES)
            ):
                name = node.slice.value
            if name:
                found.setdefault(name, set()).add(where)
    return found


def env_sources(config: Any) -> set[str]:
    """Names in Dagster `{env: NAME}` config sources anywhere in a parsed YAML document."""
    names: set[str] = set()
    if isinstance(config, dict):
        if set(config) == {"env"} and isinstance(config["env"], str):
            names.add(config["env"])
        for value in config.values():
            names |= env_sources(value)
    elif isinstance(config, list):
        for value in config:
            names |= env_sources(value)
    return names


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


# --- docker-compose ------------------------------------------------------------------------

_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)


class MissingVariableError(ValueError):
    pass


def interpolation_names(text: str) -> dict[str, set[str]]:
    """Variables a compose file interpolates, each with the operators used (`:-`, `:?`, ...)."""
    names: dict[str, set[str]] = {}
    for match in _INTERPOLATION.finditer(text):
        if match.group("name"):
            names.setdefault(match.group("name"), set()).add(match.group("op") or "")
    return names


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable substitution: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err},
    ${VAR?err} and $$, applied to every string of a parsed compose file."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name, op, arg = match.group("name"), match.group("op") or "", match.group("arg") or ""
        current = env.get(name)
        unset_or_empty = not current if op.startswith(":") else current is None
        if op.endswith("?") and unset_or_empty:
            raise MissingVariableError(f"{name}: {arg}")
        if op.endswith("-") and unset_or_empty:
            return arg
        return current or ""

    return _INTERPOLATION.sub(substitute, value)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a compose --env-file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def compose_text() -> str:
    return (REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8")


def compose_raw() -> dict[str, Any]:
    """docker-compose.yml parsed (YAML merge keys resolved), before interpolation."""
    return yaml.safe_load(compose_text())


def compose_rendered(env: Mapping[str, str]) -> dict[str, Any]:
    return interpolate(compose_raw(), env)


def service_environment(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {str(key): "" if value is None else str(value) for key, value in environment.items()}


def command_argv(command: Any) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


# --- Dockerfile ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile_stages() -> list[list[Instruction]]:
    """The Dockerfile's instructions, continuation lines joined, grouped by build stage."""
    text = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    stages: list[list[Instruction]] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        instruction = Instruction(keyword.upper(), arguments.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


def dockerfile_env(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for token in shlex.split(instruction.arguments):
                key, _, value = token.partition("=")
                env[key] = value
    return env


def dockerignore_excludes(relative_path: str) -> bool:
    """Whether .dockerignore keeps `relative_path` out of the build context (last match wins;
    a pattern matching a parent folder applies to everything inside it)."""
    import fnmatch

    rules: list[tuple[bool, str]] = []
    for raw in (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, line.lstrip("!").rstrip("/")))
    parts = relative_path.split("/")
    prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    excluded = False
    for negated, pattern in rules:
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            excluded = not negated
    return excluded


# --- Kubernetes ----------------------------------------------------------------------------


def k8s_documents() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        documents.extend(load_yaml_documents(path))
    return documents


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    matches = [
        doc
        for doc in k8s_documents()
        if doc.get("kind") == kind and doc.get("metadata", {}).get("name") == name
    ]
    assert len(matches) == 1, f"expected one {kind} {name} in deploy/k8s, found {len(matches)}"
    return matches[0]


def container_environment(
    env: list[Mapping[str, Any]] | None, config_maps: list[str]
) -> dict[str, Mapping[str, Any]]:
    """Variables a container gets: its `env` entries and the keys of the ConfigMaps it loads
    (from deploy/k8s), each with its source."""
    available: dict[str, Mapping[str, Any]] = {}
    for name in config_maps:
        data = k8s_object("ConfigMap", name).get("data") or {}
        for key, value in data.items():
            available[key] = {"configMap": name, "value": value}
    for entry in env or []:
        available[entry["name"]] = entry
    return available
