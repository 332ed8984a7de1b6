"""Real webhook receivers on loopback for the delivery tests: a TCP server (HTTPS with a trustme
certificate, or plain HTTP) whose answer each test chooses, recording what reached it.

Written on raw sockets rather than `http.server` because the hostile answers (a status line
trickled a byte at a time, a body larger than any reader should take, no answer at all) are the
point, and `http.server` cannot be made to misbehave that way.
"""

import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import trustme

HOOK_HOST = "hooks.example.test"


@dataclass
class Received:
    """One request as it arrived."""

    request_line: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


Answer = Callable[[socket.socket, "Receiver"], None]


def answer(status: str, headers: tuple[str, ...] = (), body: bytes = b"") -> Answer:
    """An answer sent in one piece."""

    def send(conn: socket.socket, receiver: "Receiver") -> None:
        head = [f"HTTP/1.1 {status}", *headers, f"Content-Length: {len(body)}", "", ""]
        conn.sendall("\r\n".join(head).encode() + body)

    return send


@dataclass
class Receiver:
    """A server on 127.0.0.1 answering every request with `respond`; `stop()` ends it."""

    respond: Answer
    tls: ssl.SSLContext | None = None
    connections: int = 0
    requests: list[Received] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)  # SNI, per TLS handshake
    bytes_sent: int = 0  # what hostile answers managed to send
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        if self.tls is not None:
            self.tls.sni_callback = self._record_sni
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _record_sni(self, _sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        self.server_names.append(name)

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.requests.append(_read_request(conn))
            self.respond(conn, self)
        except OSError:
            pass  # the client went away or refused our certificate: what some tests want
        finally:
            conn.close()

    def wait_handled(self) -> None:
        """Wait until every connection so far has been answered (or abandoned)."""
        for thread in list(self._threads):
            thread.join(timeout=30)

    def stop(self) -> None:
        """Stop, counting connections still waiting to be accepted: after `stop`,
        `connections` is every connection ever made to the receiver."""
        if self._listener.fileno() == -1:
            return
        self.stopping.set()
        self._accepting.join()
        self._listener.setblocking(False)
        while True:
            try:
                conn, _ = self._listener.accept()
            except BlockingIOError:
                break
            self.connections += 1
            conn.close()
        self.wait_handled()
        self._listener.close()


def _read_request(conn: socket.socket) -> Received:
    reader = conn.makefile("rb")
    request_line = reader.readline().decode().rstrip("\r\n")
    headers: dict[str, str] = {}
    while (line := reader.readline().decode().rstrip("\r\n")) != "":
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = reader.read(int(headers.get("content-length", "0")))
    return Received(request_line, headers, body)


def tls_server_context(ca: trustme.CA, name: str = HOOK_HOST) -> ssl.SSLContext:
    """A server context presenting a certificate for `name` issued by `ca`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    return context


def tls_client_context(ca: trustme.CA) -> ssl.SSLContext:
    """What `deliver` gets in tests: the default context, trusting the test CA."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context
