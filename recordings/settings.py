"""Settings read from the environment, once, in one place.

Every process (CLI, Dagster code server, API) reads the same variables, so an operator configures
a deployment by environment alone and no secret is ever written into code or config files. For
local development `recordings s3 start` writes a `.env` file in the project folder; `load_dotenv`
reads it without overriding variables that are already set.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ENV_PREFIX = "RECORDINGS_"

DEFAULT_ARCHIVE_BUCKET = "conversation-archives"
DEFAULT_SOURCE_BUCKET = "conversation-audio"
DEFAULT_S3_ENDPOINT = "http://127.0.0.1:8333"
DEFAULT_S3_REGION = "us-east-1"


class SettingsError(RuntimeError):
    """A required setting is missing or malformed; the message says which and how to fix it."""


def env_value(name: str) -> str | None:
    """`RECORDINGS_{name}`, or None when unset or empty."""
    return os.environ.get(ENV_PREFIX + name) or None


def env_or(name: str, default: str) -> str:
    """`RECORDINGS_{name}`, or `default` when unset or empty."""
    return env_value(name) or default


_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


def env_flag(name: str) -> bool:
    """A yes/no setting by its full name (1/true/yes/on or 0/false/no/off, unset: no), read the
    same way by every process; any other value is a ValueError, so a typo never silently means
    no."""
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE_WORDS:
        return True
    if value in _FALSE_WORDS:
        return False
    raise ValueError(f"{name}={os.environ[name]!r} is not a yes/no value: use true or false")


def _required(name: str, hint: str) -> str:
    value = env_value(name)
    if value is None:
        raise SettingsError(f"{ENV_PREFIX}{name} is not set. {hint}")
    return value


def parse_endpoint(url: str) -> tuple[str, bool]:
    """Split `http(s)://host:port` into the SDK's `host:port` and its `secure` flag."""
    parsed = urlsplit(url if "://" in url else f"http://{url}")
    if parsed.scheme not in {"http", "https"} or not parsed.netloc or parsed.path not in {"", "/"}:
        raise SettingsError(
            f"S3 endpoint {url!r} is invalid: use http://host:port or https://host:port"
        )
    return parsed.netloc, parsed.scheme == "https"


@dataclass(frozen=True)
class S3Settings:
    """Where the object store is and how to sign requests to it."""

    endpoint: str  # http(s)://host:port
    access_key: str
    secret_key: str
    region: str
    archive_bucket: str
    source_bucket: str

    @classmethod
    def from_env(cls) -> "S3Settings":
        hint = "Run `recordings s3 start` for a local server, or export the MinIO credentials."
        return cls(
            endpoint=env_or("S3_ENDPOINT", DEFAULT_S3_ENDPOINT),
            access_key=_required("S3_ACCESS_KEY", hint),
            secret_key=_required("S3_SECRET_KEY", hint),
            region=env_or("S3_REGION", DEFAULT_S3_REGION),
            archive_bucket=env_or("ARCHIVE_BUCKET", DEFAULT_ARCHIVE_BUCKET),
            source_bucket=env_or("SOURCE_BUCKET", DEFAULT_SOURCE_BUCKET),
        )


def database_url_from_env() -> str:
    """The application database URL (SQLAlchemy form), e.g. `sqlite:////abs/path.db`."""
    return _required(
        "DATABASE_URL",
        "Set it to a SQLAlchemy URL, e.g. sqlite:////path/recordings.db or "
        "postgresql+psycopg://user@host/db (`recordings s3 start` writes a local default to .env).",
    )


def load_dotenv(path: Path) -> dict[str, str]:
    """Read `KEY=VALUE` lines from `path` into `os.environ` without overriding what is set.

    Dagster's `dagster dev` reads the same `.env` file, so the CLI, the code server and the
    tests of a local checkout all see one configuration. Returns the variables it set.
    """
    loaded: dict[str, str] = {}
    if not path.is_file():
        return loaded
    for raw_line in path.read_text(encoding="utf-8").splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip().removeprefix("export ").strip()
        value = value.strip().strip('"').strip("'")
        if key and key not in os.environ:
            os.environ[key] = value
            loaded[key] = value
    return loaded
