"""Run the API as a real uvicorn process: for `recordings api start`, tests and benchmarks.

Several API processes share one database, which is exactly the deployment the download limit
must hold across, so tests and benchmarks start real processes rather than an in-process app.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

APP_FACTORY = "recordings_api.app:create_app"


class ApiServerError(RuntimeError):
    pass


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LocalApiServer:
    """One uvicorn process serving the app on 127.0.0.1:`port`."""

    port: int
    env: Mapping[str, str]
    log_path: Path
    factory: str = APP_FACTORY
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ApiServerError("the API was not started")
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            self.factory,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.extra_args,
        ]

    def start(self, *, new_session: bool = False) -> "LocalApiServer":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log: IO[bytes]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - fixed argv
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=new_session,
                env={**os.environ, **self.env},
            )
        return self

    def wait_ready(self, timeout: float = 60.0, path: str = "/health/live") -> None:
        """Wait until the process answers `path`; raise with the log's tail if it dies."""
        if self.process is None:
            raise ApiServerError("the API was not started")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ApiServerError(
                    f"the API exited with code {self.process.returncode}: {self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}{path}", timeout=2):  # noqa: S310
                    return
            except OSError:
                time.sleep(0.2)
        raise ApiServerError(f"the API did not answer within {timeout:.0f} s: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "LocalApiServer":
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
