"""Why this exists: a second checkout's demo holds the local S3 server's ports, and `recordings s3
start` used to say only "weed exited with code 255". It must name the busy port and the setting
or option that picks another, and leave nothing running behind.

The ports are held by real sockets; the servers would start on free ports otherwise.
"""

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from recordings_cli.local_s3 import LocalS3Ports
from recordings_cli.main import main


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@contextmanager
def _occupied(port: int) -> Iterator[None]:
    """Another program listening on `port`, as a second checkout's server would."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        yield


def _port_options(ports: LocalS3Ports) -> list[str]:
    return [
        "--master-port",
        str(ports.master),
        "--volume-port",
        str(ports.volume),
        "--filer-port",
        str(ports.filer),
    ]


def _assert_nothing_running(project: Path) -> None:
    assert not (project / ".local" / "s3" / "weed.pid").exists()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes()
        except OSError:
            continue
        assert str(project).encode() not in argv, argv
    code, out = _run("s3", "status")
    assert code == 1 and "not running" in out


@pytest.fixture
def ports(no_dotenv: Path, monkeypatch: pytest.MonkeyPatch) -> LocalS3Ports:
    """Free ports for this test's server; its S3 port set the way a project sets it."""
    chosen = LocalS3Ports.free()
    monkeypatch.setenv("RECORDINGS_S3_ENDPOINT", f"http://127.0.0.1:{chosen.s3}")
    return chosen


def test_a_busy_s3_port_is_named_with_the_setting_that_moves_it(
    no_dotenv: Path, ports: LocalS3Ports
) -> None:
    with _occupied(ports.s3):
        code, out = _run("s3", "start", *_port_options(ports))
    assert code == 1
    assert f"port {ports.s3} (S3) is already in use on 127.0.0.1" in out
    assert "RECORDINGS_S3_ENDPOINT=http://127.0.0.1:" in out
    assert str(no_dotenv / ".env") in out
    assert "recordings s3 stop" in out
    assert "weed exited" not in out
    _assert_nothing_running(no_dotenv)


def test_a_busy_internal_port_is_named_with_the_option_that_moves_it(
    no_dotenv: Path, ports: LocalS3Ports
) -> None:
    with _occupied(ports.volume + 10000):
        code, out = _run("s3", "start", *_port_options(ports))
    assert code == 1
    assert f"port {ports.volume + 10000} (volume gRPC) is already in use" in out
    assert "recordings s3 start --volume-port " in out
    assert "RECORDINGS_S3_ENDPOINT=" not in out
    _assert_nothing_running(no_dotenv)


def test_a_port_taken_after_the_check_is_read_from_weeds_log(
    no_dotenv: Path, ports: LocalS3Ports, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The check before starting sees nothing busy, as when another program binds the port in
    # between: weed itself fails to bind it, and its log names the port.
    monkeypatch.setattr(LocalS3Ports, "busy", lambda self: [])
    with _occupied(ports.filer):
        code, out = _run("s3", "start", *_port_options(ports))
    assert code == 1
    assert f"port {ports.filer} (filer) is already in use" in out
    assert "recordings s3 start --filer-port " in out
    assert "weed exited" not in out
    _assert_nothing_running(no_dotenv)
