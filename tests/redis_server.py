"""A throwaway Redis server for tests, from the Debian `redis-server` package's binary.

The Celery run engine's broker and result backend (docs/DISTRIBUTED.md). Loopback only, on a free
port, nothing persisted (no RDB snapshot, no append-only file), its folder deleted afterwards;
a test may stop it and start it again (an outage), which loses what it held, as a Redis without
persistence does.
"""

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server not found; install it with `make system-deps` "
            "(Debian package redis-server)"
        )
    return binary


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A private Redis on a free loopback port."""

    def __init__(self) -> None:
        self.binary = redis_server_binary()
        self.root = Path(tempfile.mkdtemp(prefix="recordings-redis-"))
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20) -> None:
        with (self.root / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    *("--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--dir", str(self.root), "--save", "", "--appendonly", "no"),
                    *("--protected-mode", "yes", "--daemonize", "no"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None:
                log_text = (self.root / "server.log").read_text(errors="replace")
                raise RuntimeError(f"redis-server exited:\n{log_text}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer in {timeout:.0f} s")
            time.sleep(0.05)

    def answers(self) -> bool:
        """Whether the server answers PING (RESP, without a client library)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def temporary_redis() -> Iterator[RedisServer]:
    """Start a private Redis server; yield it (its `url` for Celery's broker and results)."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()
