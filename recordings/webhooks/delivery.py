"""Posting one webhook event to a tenant's URL without letting the URL reach inward (SSRF).

A tenant chooses the URL, so the service must not become the tenant's way into the network it
runs in. The rules, checked when a URL is registered (`check_url`) and again at every delivery
(`deliver`), because the name's DNS answer may change in between (DNS rebinding):

- only ``https``; no ``user:pass@``; no fragment; at most 2048 characters; a host name or a
  canonical IP literal (odd IPv4 spellings such as ``2130706433`` or ``0x7f.1``, which resolvers
  read as 127.0.0.1, are refused);
- every address the name resolves to must be globally routable: none loopback, private
  (RFC 1918, fc00::/7), link-local, shared (100.64/10), unspecified, multicast, reserved or
  special-purpose (documentation, benchmarking, IETF protocol assignments 192.0.0/24,
  site-local fec0::/10...), none a cloud metadata address, and none an IPv6 form that embeds
  such an IPv4 address (IPv4-mapped, 6to4, NAT64) or hides its IPv4 address (Teredo). One bad
  address refuses the URL: a name answering [public, private] is refused;
- `allow_loopback` (local development and tests only) admits loopback addresses, and ``http``
  when every address is loopback; everything else stays forbidden.

A delivery connects to the checked address itself (no second resolution by an HTTP library),
verifies the certificate against the URL's host name (SNI too), never follows a redirect, is
bounded as a whole by one deadline (resolution, connection, TLS, sending and the response: a
server trickling a byte a second is cut at the deadline), and reads at most
`max_response_bytes` of a response body (and 64 KiB of status line and headers). A timeout
after sending may leave an event the receiver did process: the retry carries the same
``webhook-id``, by which receivers drop duplicates. It never raises for network or HTTP
failures: the outcome says what happened, with a stable code and a detail for people.
"""

import http.client
import io
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
MAX_DETAIL_LENGTH = 500  # webhook_attempts.detail holds this much
MAX_HEAD_BYTES = 64 * 1024  # an answer's status line and headers, read besides the body's bound
USER_AGENT = "recordings-webhooks/1 (day-ready events; Standard Webhooks)"
DELIVERED = "delivered"

# Addresses of the clouds' instance metadata services, named in refusals. Most are also
# link-local or shared, so refused anyway; Azure's host address is in a public range.
METADATA_ADDRESSES: dict[IPAddress, str] = {
    ipaddress.ip_address("169.254.169.254"): "the cloud metadata address",
    ipaddress.ip_address("fd00:ec2::254"): "the AWS IPv6 metadata address",
    ipaddress.ip_address("100.100.100.200"): "the Alibaba Cloud metadata address",
    ipaddress.ip_address("168.63.129.16"): "the Azure host (WireServer) address",
    ipaddress.ip_address("192.0.0.192"): "the Oracle Cloud metadata address",
}
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_PRIVATE = tuple(
    ipaddress.ip_network(network)
    for network in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
# Not globally routable, yet `is_global` in Python 3.11 says otherwise (3.12.4 fixed it).
_IETF_PROTOCOL_ASSIGNMENTS = ipaddress.ip_network("192.0.0.0/24")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")

_HOST_NAME = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*\.?")
# What resolvers read as an IPv4 number: the last label decimal, octal or hexadecimal.
_NUMERIC_LAST_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
# Framing headers are ours to write; a caller setting them would corrupt the request.
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class UnsafeWebhookUrl(ValueError):
    """A webhook URL refused: `code` is stable, the message says what was wrong and what to do.

    Codes: ``webhook_url_invalid``, ``webhook_url_not_https``, ``webhook_address_forbidden``,
    ``webhook_name_unresolvable``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """How one delivery attempt ended.

    `outcome` is ``delivered`` (a 2xx answer) or a stable error code:

    - ``url_invalid``, ``url_not_https``, ``address_forbidden``, ``name_unresolvable``: the URL
      failed the checks at delivery time (as `UnsafeWebhookUrl`'s codes, without ``webhook_``);
      nothing was sent;
    - ``timeout``: the attempt did not finish within its deadline (resolving, connecting, TLS,
      sending or waiting for the answer);
    - ``connection_failed``: the connection was refused, reset or closed early;
    - ``tls_failed``: the TLS handshake failed, e.g. the certificate does not verify for the
      URL's host name;
    - ``bad_response``: the answer is not HTTP (or its status line or headers are too long);
    - ``redirect_not_followed``: a 3xx answer (its Location is in `detail`);
    - ``http_error``: any other status (4xx, 5xx, an unexpected 1xx), in `status_code`.

    `address` is the IP connected to (or last tried); `detail` is for people, at most 500
    characters, and never holds the request's body or headers.
    """

    outcome: str
    status_code: int | None
    duration_ms: int
    address: str | None
    detail: str

    @property
    def delivered(self) -> bool:
        return self.outcome == DELIVERED


@dataclass(frozen=True, slots=True)
class _Target:
    """A URL that passed the syntax checks, in the pieces a delivery needs."""

    scheme: str
    host: str  # lower case, without brackets
    port: int
    request_target: str  # path and query, as sent in the request line
    host_header: str
    literal: IPAddress | None  # the host when it is an IP address


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, through the system's resolver (``getaddrinfo``)."""
    answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(answer[4][0]) for answer in answers))


def check_url(url: str, *, allow_loopback: bool = False, resolver: Resolver = resolve) -> list[str]:
    """Validate a URL a tenant registers; returns the addresses it resolves to; raises
    UnsafeWebhookUrl (see the module's docstring for the rules).

    Resolution here is bounded only by the system resolver's own timeouts; `deliver` bounds
    it by the attempt's deadline."""
    target = _parse_url(url, allow_loopback=allow_loopback)
    return [str(address) for address in _checked_addresses(target, allow_loopback, resolver)]


def deliver(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    allow_loopback: bool = False,
    timeout_seconds: float = 10.0,
    max_response_bytes: int = 16 * 1024,
    resolver: Resolver = resolve,
    ssl_context: ssl.SSLContext | None = None,
) -> DeliveryOutcome:
    """POST one event; never raises for network/HTTP failures (returns the outcome).

    The URL is checked again first (resolving the name again), then the request goes to a
    checked address. Raises ValueError only for a caller's mistake: a header name or value that
    cannot be sent, or a framing header (Host, Content-Length...) that is the request's own.
    """
    started = time.monotonic()
    deadline = started + timeout_seconds
    fields = _header_fields(headers)  # a caller's mistake raises before anything is done
    address: str | None = None

    def ended(outcome: str, detail: str, status_code: int | None = None) -> DeliveryOutcome:
        duration_ms = round((time.monotonic() - started) * 1000)
        return DeliveryOutcome(outcome, status_code, duration_ms, address, _clip(detail))

    try:
        target = _parse_url(url, allow_loopback=allow_loopback)
        addresses = _checked_addresses(
            target,
            allow_loopback,
            lambda host, port: _resolve_by(resolver, host, port, deadline),
        )
    except UnsafeWebhookUrl as refused:
        return ended(refused.code.removeprefix("webhook_"), f"{refused}; nothing was sent")
    except TimeoutError:
        return ended("timeout", f"resolving the URL's host took over {timeout_seconds:g} s")

    context = ssl_context or ssl.create_default_context()
    budget = MAX_HEAD_BYTES + max_response_bytes  # what is read of the answer, at most
    step = "connecting"
    sock: socket.socket | None = None
    try:
        failure: OSError | None = None
        for candidate in addresses:  # every one is checked; the first that answers is used
            address = str(candidate)
            try:
                sock = _connect(candidate, target.port, deadline)
                break
            except TimeoutError:
                raise
            except OSError as error:
                failure = error
        if sock is None:
            raise failure or ConnectionError("no address to connect to")
        if target.scheme == "https":
            step = "in the TLS handshake"
            sock.settimeout(_remaining(deadline))
            sock = context.wrap_socket(sock, server_hostname=target.host)
        step = "sending the event"
        _send_all(sock, _request_head(target, fields, len(body)) + body, deadline)
        step = "waiting for the answer"
        response = http.client.HTTPResponse(
            cast(socket.socket, _BoundedSocket(sock, deadline, budget)), method="POST"
        )
        response.begin()
        status = response.status
        if 200 <= status < 300:
            return ended(DELIVERED, f"HTTP {status} {response.reason}", status)
        if 300 <= status < 400:
            location = _printable(response.getheader("location") or "(none)")
            return ended(
                "redirect_not_followed",
                f"HTTP {status} {response.reason} to {_clip(location, 200)}: redirects are not "
                "followed; register the URL the events should reach",
                status,
            )
        excerpt = _read_some(response, max_response_bytes).decode("utf-8", "replace")
        return ended(
            "http_error",
            f"HTTP {status} {response.reason}: {_printable(excerpt)}".rstrip(": "),
            status,
        )
    except http.client.RemoteDisconnected:
        return ended("connection_failed", "the receiver closed the connection without answering")
    except TimeoutError:
        return ended("timeout", f"no answer within {timeout_seconds:g} s ({step})")
    except ssl.SSLCertVerificationError as error:
        return ended("tls_failed", f"the certificate does not verify: {error.verify_message}")
    except ssl.SSLError as error:
        return ended("tls_failed", f"TLS failed {step}: {error.reason or error}")
    except _AnswerTooLarge:
        return ended("bad_response", f"the answer's status line and headers exceed {budget} bytes")
    except http.client.HTTPException as error:
        return ended("bad_response", f"the answer is not valid HTTP ({type(error).__name__})")
    except OSError as error:
        return ended("connection_failed", f"{step} failed: {error.strerror or error}")
    finally:
        if sock is not None:
            sock.close()


def _parse_url(url: str, *, allow_loopback: bool) -> _Target:
    def invalid(reason: str) -> UnsafeWebhookUrl:
        return UnsafeWebhookUrl("webhook_url_invalid", f"the webhook URL {reason}")

    if len(url) > MAX_URL_LENGTH:
        raise invalid(f"has {len(url)} characters, more than {MAX_URL_LENGTH}: use a shorter one")
    if not url.isascii() or any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise invalid(
            "holds a space, a control or a non-ASCII character: percent-encode the path and "
            "write an international host name in its xn-- (punycode) form"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise invalid(f"cannot be parsed ({error}): write it as https://host[:port]/path") from None
    scheme = parts.scheme.lower()
    if not scheme or not parts.netloc:
        raise invalid("is not absolute: write it as https://host[:port]/path")
    if scheme != "https" and not (scheme == "http" and allow_loopback):
        raise UnsafeWebhookUrl(
            "webhook_url_not_https",
            f"the webhook URL's scheme is {scheme!r}: only https URLs receive events",
        )
    if "@" in parts.netloc:
        raise invalid(
            "carries credentials (user:password@): remove them; the receiver authenticates "
            "events by their webhook-signature"
        )
    if "#" in url:
        raise invalid("has a fragment (#...), which is never sent: remove it")
    if port == 0:
        raise invalid("has port 0: leave the port out or name the receiver's port")
    host = (parts.hostname or "").lower()
    if not host:
        raise invalid("has no host: write it as https://host[:port]/path")
    if "%" in host:
        raise invalid("has a percent sign or an IPv6 zone id in its host: remove it")
    literal = _literal_address(host, bracketed=parts.netloc.startswith("["))
    if literal is None and not _HOST_NAME.fullmatch(host):
        raise invalid(f"has a host {host!r} that is not a valid host name")
    default_port = 443 if scheme == "https" else 80
    shown_host = f"[{host}]" if isinstance(literal, ipaddress.IPv6Address) else host
    query = f"?{parts.query}" if parts.query else ""
    return _Target(
        scheme=scheme,
        host=host,
        port=port or default_port,
        request_target=(parts.path or "/") + query,
        host_header=shown_host if port in (None, default_port) else f"{shown_host}:{port}",
        literal=literal,
    )


def _literal_address(host: str, *, bracketed: bool) -> IPAddress | None:
    """The host as an IP address when it is one; odd IPv4 spellings are refused, naming the
    address they stand for, so a refusal is never "unresolvable" for 0x7f.1."""
    if bracketed:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise UnsafeWebhookUrl(
                "webhook_url_invalid",
                f"the webhook URL's host [{host}] is not an IPv6 address (zone ids are refused)",
            ) from None
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        pass
    last_label = host.removesuffix(".").rsplit(".", 1)[-1]
    if not _NUMERIC_LAST_LABEL.fullmatch(last_label):
        return None
    try:
        meant = f", which resolvers read as {ipaddress.IPv4Address(socket.inet_aton(host))}"
    except OSError:
        meant = ""
    raise UnsafeWebhookUrl(
        "webhook_url_invalid",
        f"the webhook URL's host {host!r} is neither a host name nor an IPv4 address written "
        f"a.b.c.d{meant}: use the receiver's public host name",
    )


def _checked_addresses(
    target: _Target, allow_loopback: bool, resolver: Resolver
) -> list[IPAddress]:
    """The target's addresses, every one allowed, or UnsafeWebhookUrl."""
    if target.literal is not None:
        addresses = [target.literal]
    else:
        try:
            answers = resolver(target.host, target.port)
            addresses = [ipaddress.ip_address(answer.split("%", 1)[0]) for answer in answers]
        except TimeoutError:
            raise  # the delivery's deadline, not the name's fault
        except (OSError, UnicodeError, ValueError) as error:
            raise UnsafeWebhookUrl(
                "webhook_name_unresolvable",
                f"the webhook URL's host {target.host!r} does not resolve ({error}): check the "
                "name and that it has a public DNS record",
            ) from None
        if not addresses:
            raise UnsafeWebhookUrl(
                "webhook_name_unresolvable",
                f"the webhook URL's host {target.host!r} resolves to no address: check the name "
                "and that it has a public DNS record",
            )
    for address in addresses:
        reason = forbidden_reason(address, allow_loopback=allow_loopback)
        if reason is not None:
            via = "" if target.literal is not None else f"{target.host} resolves to "
            raise UnsafeWebhookUrl(
                "webhook_address_forbidden",
                f"{via}{_shown(address)}, {reason}: events go only to globally routable addresses; "
                "use a URL whose host resolves only to the receiver's public addresses",
            )
    if target.scheme == "http" and not all(address.is_loopback for address in addresses):
        raise UnsafeWebhookUrl(
            "webhook_url_not_https",
            "the webhook URL is http: only https URLs receive events (http is allowed for a "
            "loopback receiver in local development only)",
        )
    return addresses


def forbidden_reason(address: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why events must not go to `address` (e.g. "a private address"), or None if they may.

    `is_global` alone is not enough: Python's tables differ between releases, count some
    multicast as global, and do not look inside IPv6 forms that carry an IPv4 address.
    """
    if address in METADATA_ADDRESSES:
        return METADATA_ADDRESSES[address]
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = forbidden_reason(embedded, allow_loopback=allow_loopback)
            return None if reason is None else f"which carries {embedded}, {reason}"
        if address.teredo is not None:
            return "a Teredo address (its IPv4 address is hidden)"
        if address in _NAT64_LOCAL:
            return "a local-use NAT64 address"
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if any(address in network for network in _PRIVATE):
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    if not address.is_global or address in _IETF_PROTOCOL_ASSIGNMENTS:
        return "a special-purpose address (documentation, benchmarking or similar), not routable"
    return None


def _shown(address: IPAddress) -> str:
    """The address as people write it (Python 3.11 shows ::ffff:127.0.0.1 as ::ffff:7f00:1)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, 6to4 or NAT64 address reaches."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _resolve_by(resolver: Resolver, host: str, port: int, deadline: float) -> list[str]:
    """The resolver's answer, or TimeoutError at the deadline (the system resolver has no
    timeout of ours; its thread is left to finish on its own)."""
    answers: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            answers.extend(resolver(host, port))
        except BaseException as error:  # re-raised in the caller's thread
            errors.append(error)

    thread = threading.Thread(target=run, name=f"resolve {host}", daemon=True)
    thread.start()
    thread.join(_remaining(deadline))
    if thread.is_alive():
        raise TimeoutError(f"resolving {host}")
    if errors:
        raise errors[0]
    return answers


def _remaining(deadline: float) -> float:
    """Seconds left before the deadline; TimeoutError when none are."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("the attempt's deadline passed")
    return remaining


def _connect(address: IPAddress, port: int, deadline: float) -> socket.socket:
    """A TCP connection to exactly `address` (no name is resolved here)."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(_remaining(deadline))
        sock.connect((str(address), port))
    except BaseException:
        sock.close()
        raise
    return sock


def _send_all(sock: socket.socket, data: bytes, deadline: float) -> None:
    """Send everything before the deadline (`sendall`'s timeout is per send on TLS sockets)."""
    view = memoryview(data)
    while view:
        sock.settimeout(_remaining(deadline))
        view = view[sock.send(view) :]


class _AnswerTooLarge(http.client.HTTPException):
    """More of the answer than the attempt reads."""


class _BoundedReader(io.RawIOBase):
    """Reads from a socket, each read given only the time left before the deadline (so a
    server trickling bytes cannot hold the attempt beyond it), and no more bytes in all than
    `budget` (so a flood is never read, even one hidden in headers)."""

    def __init__(self, sock: socket.socket, deadline: float, budget: int) -> None:
        self._sock = sock
        self._deadline = deadline
        self._budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "WriteableBuffer") -> int:
        if self._budget <= 0:
            raise _AnswerTooLarge("the answer is longer than the attempt reads")
        self._sock.settimeout(_remaining(self._deadline))
        received = self._sock.recv_into(memoryview(buffer).cast("B")[: self._budget])
        self._budget -= received
        return received


class _BoundedSocket:
    """What `http.client.HTTPResponse` needs of a socket (`makefile`), reading through a
    `_BoundedReader`."""

    def __init__(self, sock: socket.socket, deadline: float, budget: int) -> None:
        self._reader = _BoundedReader(sock, deadline, budget)

    def makefile(self, mode: str) -> io.BufferedReader:
        assert mode == "rb"  # noqa: S101 (HTTPResponse's only use)
        return io.BufferedReader(self._reader)


def _read_some(response: http.client.HTTPResponse, limit: int) -> bytes:
    """Up to `limit` bytes of the body, as far as they come before the deadline; the rest is
    never read."""
    received = bytearray()
    try:
        while len(received) < limit:
            chunk = response.read1(limit - len(received))
            if not chunk:
                break
            received += chunk
    except (OSError, http.client.HTTPException):
        pass  # the status is the outcome; the body only illustrates it
    return bytes(received)


def _header_fields(headers: Mapping[str, str]) -> dict[str, str]:
    """Our headers, then the caller's (which may replace content-type and user-agent, not the
    request's framing); ValueError for one that cannot be sent."""
    fields = {"content-type": "application/json", "user-agent": USER_AGENT}
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name) or not _HEADER_VALUE.fullmatch(value):
            raise ValueError(f"header {name!r} cannot be sent (a bad character in name or value)")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"header {name!r} is set by the delivery itself")
        fields[name.lower()] = value
    return fields


def _request_head(target: _Target, fields: Mapping[str, str], length: int) -> bytes:
    """The request line and headers, up to the body."""
    lines = [
        f"POST {target.request_target} HTTP/1.1",
        f"host: {target.host_header}",
        *(f"{name}: {value}" for name, value in fields.items()),
        f"content-length: {length}",
        "connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _printable(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()


def _clip(text: str, limit: int = MAX_DETAIL_LENGTH) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
