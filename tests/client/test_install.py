"""The client installs on its own: a fresh virtual environment gets httpx and nothing of the
server (no Dagster, no database drivers, no web framework), and its command and API work."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.sqlite_run_only]

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"

SERVER_DISTRIBUTIONS = {
    "dagster",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "psycopg-binary",
    "litestar",
    "minio",
    "uvicorn",
    "numpy",
    "soundfile",
    "av",
    "daily-conversation-audio-recordings",
}


def test_the_client_installs_in_a_fresh_venv_without_any_server_dependency(
    tmp_path: Path,
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(CLIENT)],
        check=True,
        timeout=600,
    )
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    installed = {
        line.split("==")[0].lower().replace("_", "-")
        for line in listed.splitlines()
        if "==" in line
    }
    assert "httpx" in installed and "daily-conversation-audio-recordings-client" in installed
    assert not installed & SERVER_DISTRIBUTIONS, installed
    # Only httpx and what it needs, and the installer itself.
    assert installed <= {
        "daily-conversation-audio-recordings-client",
        "httpx",
        "httpcore",
        "h11",
        "anyio",
        "idna",
        "sniffio",
        "certifi",
        "typing-extensions",
        "exceptiongroup",
        "pip",
        "setuptools",
    }, installed

    help_text = subprocess.run(
        [venv / "bin" / "recordings-client", "fetch", "--help"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "--token-file" in help_text and "--skip-empty" in help_text
    refused = subprocess.run(
        [venv / "bin" / "recordings-client", "fetch", "--api", "http://127.0.0.1:9",
         "--dest", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert refused.returncode == 1
    assert "no token: set RECORDINGS_TOKEN or pass --token-file" in refused.stderr
    imported = subprocess.run(
        [python, "-c", "import recordings_client, sys; "
         "print(recordings_client.verify_webhook.__module__, sorted(sys.modules) and "
         "any(m.startswith(('dagster', 'sqlalchemy')) for m in sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()  # fmt: skip
    assert imported == ["recordings_client.webhooks", "False"]
