"""The project folder the CLI runs in: its `.env` and its local state under `.local/`.

Local state (the S3 server's data, the SQLite database, the Dagster instance) lives under
`.local/`, and the configuration in `.env`, which `dagster dev` reads too.
`RECORDINGS_PROJECT_DIR` points the CLI at another folder (tests use it so a developer's `.env`
is never read).
"""

import base64
import os
import secrets
import shutil
from pathlib import Path

from recordings_cli.common import fail

LOCAL_DIR_NAME = ".local"
ENV_FILE_NAME = ".env"
API_PORT = 8000
S3_PORT = 8333


def project_dir() -> Path:
    """The folder the CLI works in: RECORDINGS_PROJECT_DIR, else the current folder."""
    return Path(os.environ.get("RECORDINGS_PROJECT_DIR") or Path.cwd()).resolve()


def local_dir() -> Path:
    """Where local servers keep their data and pid files."""
    return project_dir() / LOCAL_DIR_NAME


def env_file() -> Path:
    """The project's `.env`."""
    return project_dir() / ENV_FILE_NAME


def write_local_env(folder: Path) -> Path:
    """Create `.env` with fresh local credentials and paths; add settings a newer version needs
    to an existing one (never changing what is there)."""
    from recordings_cli.local_s3 import new_credentials
    from recordings_instance.archives import INSTANCE_ENVIRONMENT

    path = folder / ENV_FILE_NAME
    local = folder / LOCAL_DIR_NAME
    access_key, secret_key = new_credentials()
    wanted = {
        "RECORDINGS_DATABASE_URL": f"sqlite:///{local / 'recordings.db'}",
        "RECORDINGS_S3_ENDPOINT": f"http://127.0.0.1:{S3_PORT}",
        "RECORDINGS_S3_ACCESS_KEY": access_key,
        "RECORDINGS_S3_SECRET_KEY": secret_key,
        "RECORDINGS_ARCHIVE_BUCKET": "conversation-archives",
        "RECORDINGS_SOURCE_BUCKET": "conversation-audio",
        "DAGSTER_HOME": str(local / "dagster_home"),
        "RECORDINGS_JWT_DEV_SECRET": secrets.token_urlsafe(32),
        "RECORDINGS_LINK_KEYS": "local1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "RECORDINGS_PUBLIC_BASE_URL": f"http://127.0.0.1:{API_PORT}",
        "RECORDINGS_WEBHOOK_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        # Local receivers (a script on this machine) may get the demo's events; never in
        # production, where webhooks go to public https addresses only.
        "RECORDINGS_WEBHOOK_ALLOW_LOOPBACK": "true",
        # For `dagster dev`'s daemon and webserver, which create runs too.
        **INSTANCE_ENVIRONMENT,
    }
    existing = (
        path.read_text(encoding="utf-8")
        if path.exists()
        else (
            "# Local development settings written by `recordings s3 start`; not for production.\n"
        )
    )
    present = {line.split("=", 1)[0].strip() for line in existing.splitlines() if "=" in line}
    missing = [f"{key}={value}\n" for key, value in wanted.items() if key not in present]
    if missing:
        path.write_text(existing.rstrip("\n") + "\n" + "".join(missing), encoding="utf-8")
        path.chmod(0o600)
    return path


def dagster_home() -> Path:
    """DAGSTER_HOME, created if needed and given the project's dagster.yaml the first time."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise fail("DAGSTER_HOME is not set; run `recordings s3 start` to write a local .env")
    path = Path(home)
    path.mkdir(parents=True, exist_ok=True)
    instance_yaml = path / "dagster.yaml"
    project_yaml = project_dir() / "dagster.yaml"
    if not instance_yaml.exists() and project_yaml.exists():
        shutil.copyfile(project_yaml, instance_yaml)
    return path
