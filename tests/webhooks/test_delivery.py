"""Webhook delivery must not become a way into the service's own network (SSRF), and must not
let a receiver hold it: these tests try the ways in (loopback, private, link-local and
metadata addresses in every spelling, a name that answers differently at delivery, redirects)
and the ways to hold on (no answer, a trickled answer, an endless body).

`check_url` is tested alone with an injected resolver; `deliver` against real servers on
loopback (HTTPS with a trustme CA), reached through a resolver that maps the test's host name
to 127.0.0.1 and `allow_loopback`, the setting local development uses.
"""

import ipaddress
import socket
import threading
from collections.abc import Iterator

import pytest
import trustme

from recordings.webhooks.delivery import (
    MAX_DETAIL_LENGTH,
    USER_AGENT,
    DeliveryOutcome,
    UnsafeWebhookUrl,
    check_url,
    deliver,
)
from tests.webhooks.receivers import (
    HOOK_HOST,
    Receiver,
    answer,
    tls_client_context,
    tls_server_context,
)

PUBLIC = "93.184.215.14"
BODY = b'{"type":"day.ready","data":{"tenant":"acme","day":"2026-11-30"}}'
HEADERS = {
    "webhook-id": "msg_test",
    "webhook-timestamp": "1764547200",
    "webhook-signature": "v1,c2VjcmV0LXNpZ25hdHVyZQ==",
}
integration = pytest.mark.integration


def answers(*addresses: str):
    """A resolver answering `addresses` for any name."""

    def resolver(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolver


def refusal(url: str, *, allow_loopback: bool = False, resolved: tuple[str, ...] = (PUBLIC,)):
    with pytest.raises(UnsafeWebhookUrl) as raised:
        check_url(url, allow_loopback=allow_loopback, resolver=answers(*resolved))
    return raised.value


# --- check_url, alone ---


def test_a_public_https_url_is_accepted_with_its_addresses() -> None:
    resolver = answers(PUBLIC, "2606:2800:21f:cb07:6820:80da:af6b:8b2c")
    assert check_url("https://hooks.example.com:8443/in?x=1", resolver=resolver) == [
        PUBLIC,
        "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
    ]
    assert check_url(f"https://{PUBLIC}/", resolver=answers()) == [PUBLIC]
    for carrying_public in ("::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808"):
        assert check_url("https://hooks.example.com/", resolver=answers(carrying_public))


@pytest.mark.parametrize(
    ("address", "named"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.10.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("168.63.129.16", "Azure"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 (an address refused, not bound)
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("233.252.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("100.64.0.1", "shared"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "broadcast"),
        ("192.0.2.1", "special-purpose"),
        ("198.18.0.1", "special-purpose"),
        ("2001:db8::1", "special-purpose"),
        ("192.0.0.8", "special-purpose"),
        ("192.0.0.192", "Oracle Cloud metadata"),
        ("fec0::1", "site-local"),
        ("::ffff:127.0.0.1", "127.0.0.1, a loopback"),
        ("::ffff:169.254.169.254", "169.254.169.254, the cloud metadata"),
        ("::ffff:10.0.0.1", "10.0.0.1, a private"),
        ("::127.0.0.1", "reserved"),
        ("2002:a9fe:a9fe::1", "169.254.169.254"),
        ("2002:7f00:1::1", "127.0.0.1"),
        ("64:ff9b::7f00:1", "127.0.0.1"),
        ("64:ff9b:1::1", "NAT64"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ],
)
def test_every_address_that_is_not_globally_routable_is_refused(address: str, named: str) -> None:
    for refused in (
        refusal("https://hooks.example.com/", resolved=(address,)),
        refusal(f"https://{_bracketed(address)}/", resolved=()),
    ):
        assert refused.code == "webhook_address_forbidden"
        assert address in str(refused) or str(_canonical(address)) in str(refused)
        assert named in str(refused) or (named == "broadcast" and "reserved" in str(refused))
        assert "public" in str(refused)  # what to do


def test_one_forbidden_address_among_public_ones_refuses_the_name() -> None:
    refused = refusal("https://hooks.example.com/", resolved=(PUBLIC, "10.0.0.7"))
    assert refused.code == "webhook_address_forbidden"
    assert "hooks.example.com resolves to 10.0.0.7, a private address" in str(refused)


@pytest.mark.parametrize(
    "host", ["2130706433", "0x7f000001", "0x7f.1", "127.1", "0177.0.0.1", "017700000001", "10.1"]
)
def test_odd_ipv4_spellings_are_refused_naming_the_address_meant(host: str) -> None:
    refused = refusal(f"https://{host}/", resolved=())
    assert refused.code == "webhook_url_invalid"
    assert "resolvers read as 127.0.0.1" in str(refused) or "10.0.0.1" in str(refused)


def test_the_system_resolver_reads_odd_spellings_too_so_they_are_refused_before_it() -> None:
    assert socket.getaddrinfo("2130706433", 443)[0][4][0] == "127.0.0.1"
    with pytest.raises(UnsafeWebhookUrl, match=r"127\.0\.0\.1"):
        check_url("https://2130706433/")


def test_names_of_the_host_itself_are_refused_by_the_system_resolver() -> None:
    with pytest.raises(UnsafeWebhookUrl, match="loopback") as raised:
        check_url("https://localhost:8443/hook")
    assert raised.value.code == "webhook_address_forbidden"


@pytest.mark.parametrize(
    ("url", "code", "says"),
    [
        ("http://hooks.example.com/", "webhook_url_not_https", "only https"),
        ("ftp://hooks.example.com/", "webhook_url_not_https", "'ftp'"),
        ("HTTP://hooks.example.com/", "webhook_url_not_https", "only https"),
        ("https://user:pass@hooks.example.com/", "webhook_url_invalid", "credentials"),
        ("https://user@hooks.example.com/", "webhook_url_invalid", "credentials"),
        ("https://hooks.example.com/#top", "webhook_url_invalid", "fragment"),
        ("https://hooks.example.com/" + "a" * 2048, "webhook_url_invalid", "2048"),
        ("hooks.example.com/in", "webhook_url_invalid", "not absolute"),
        ("https:///in", "webhook_url_invalid", "absolute"),
        ("https://hooks.example.com:0/", "webhook_url_invalid", "port 0"),
        ("https://hooks.example.com:99999/", "webhook_url_invalid", "cannot be parsed"),
        ("https://hooks.example.com/a b", "webhook_url_invalid", "percent-encode"),
        ("https://hooks.example.com/\r\nX-Injected: 1", "webhook_url_invalid", "control"),
        ("https://bücher.example/", "webhook_url_invalid", "punycode"),
        ("https://hooks_.-example.com/", "webhook_url_invalid", "not a valid host name"),
        ("https://[fe80::1%25eth0]/", "webhook_url_invalid", "zone"),
    ],
)
def test_urls_that_are_not_plain_https_are_refused(url: str, code: str, says: str) -> None:
    refused = refusal(url)
    assert refused.code == code
    assert says in str(refused)


def test_an_unresolvable_name_is_refused_as_such() -> None:
    def fails(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(UnsafeWebhookUrl) as raised:
        check_url("https://nowhere.example.com/", resolver=fails)
    assert raised.value.code == "webhook_name_unresolvable"
    assert "nowhere.example.com" in str(raised.value)
    assert refusal("https://empty.example.com/", resolved=()).code == "webhook_name_unresolvable"


def test_allow_loopback_admits_loopback_and_http_to_it_but_nothing_else() -> None:
    loopback = answers("127.0.0.1", "::1")
    assert check_url("http://hooks.local:8080/", allow_loopback=True, resolver=loopback)
    assert check_url("https://hooks.local/", allow_loopback=True, resolver=loopback)
    assert check_url("http://[::1]:8080/", allow_loopback=True, resolver=answers()) == ["::1"]
    assert check_url("https://[::ffff:127.0.0.1]/", allow_loopback=True, resolver=answers())
    for address in ("10.0.0.1", "169.254.169.254", "fd00:ec2::254", "0.0.0.0"):  # noqa: S104
        refused = refusal("https://hooks.local/", allow_loopback=True, resolved=(address,))
        assert refused.code == "webhook_address_forbidden", address
    refused = refusal("http://hooks.example.com/", allow_loopback=True, resolved=(PUBLIC,))
    assert refused.code == "webhook_url_not_https"
    refused = refusal("http://hooks.local/", allow_loopback=True, resolved=("127.0.0.1", PUBLIC))
    assert refused.code == "webhook_url_not_https"
    assert refusal("https://2130706433/", allow_loopback=True).code == "webhook_url_invalid"


# --- deliver, against real receivers ---


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    """Receivers the test starts, all stopped after it."""
    started: list[Receiver] = []
    yield started
    for receiver in started:
        receiver.stop()


def start(receivers: list[Receiver], receiver: Receiver) -> Receiver:
    receivers.append(receiver)
    return receiver


def deliver_to(
    receiver: Receiver, ca: trustme.CA | None = None, *, holding: bool = False, **options
) -> DeliveryOutcome:
    """Deliver BODY and HEADERS to `receiver` as https://hooks.example.test:<port>/ (http
    when `ca` is None), the name resolving to 127.0.0.1, loopback allowed. A `holding`
    receiver keeps the connection until stopped: it is stopped once `deliver` returns, and
    after 30 s at the latest, so a delivery that ignored its deadline fails rather than hangs."""
    options.setdefault("resolver", answers("127.0.0.1"))
    options.setdefault("allow_loopback", True)
    if ca is not None:
        options.setdefault("ssl_context", tls_client_context(ca))
    scheme = "http" if ca is None else "https"
    url = f"{scheme}://{HOOK_HOST}:{receiver.port}/hooks/recordings?source=test"
    release = threading.Timer(30, receiver.stopping.set)
    release.start()
    try:
        outcome = deliver(url, BODY, HEADERS, **options)
    finally:
        release.cancel()
        if holding:
            receiver.stopping.set()
    receiver.wait_handled()
    assert len(outcome.detail) <= MAX_DETAIL_LENGTH
    assert "c2VjcmV0" not in outcome.detail and "day.ready" not in outcome.detail
    return outcome


@integration
def test_an_event_is_delivered_over_verified_tls_exactly_as_given(
    ca: trustme.CA, receivers: list[Receiver]
) -> None:
    receiver = start(receivers, Receiver(answer("204 No Content"), tls_server_context(ca)))
    outcome = deliver_to(receiver, ca)
    assert outcome.delivered
    assert (outcome.status_code, outcome.address) == (204, "127.0.0.1")
    assert receiver.server_names == [HOOK_HOST]
    [received] = receiver.requests
    assert received.request_line == "POST /hooks/recordings?source=test HTTP/1.1"
    assert received.body == BODY
    assert received.headers["host"] == f"{HOOK_HOST}:{receiver.port}"
    assert received.headers["content-type"] == "application/json"
    assert received.headers["user-agent"] == USER_AGENT
    assert received.headers["content-length"] == str(len(BODY))
    assert {name: received.headers[name] for name in HEADERS} == HEADERS


@integration
def test_a_certificate_for_another_name_or_from_another_ca_fails_tls(
    ca: trustme.CA, receivers: list[Receiver]
) -> None:
    other_name = start(
        receivers, Receiver(answer("200 OK"), tls_server_context(ca, "other.example.test"))
    )
    outcome = deliver_to(other_name, ca)
    assert outcome.outcome == "tls_failed"
    assert HOOK_HOST in outcome.detail  # the verifier names the host it expected
    assert other_name.requests == []

    right_name = start(receivers, Receiver(answer("200 OK"), tls_server_context(ca)))
    outcome = deliver_to(right_name, ca, ssl_context=tls_client_context(trustme.CA()))
    assert outcome.outcome == "tls_failed"
    assert "certificate" in outcome.detail
    assert right_name.requests == []


@integration
def test_the_default_context_trusts_only_the_system_cas(
    ca: trustme.CA, receivers: list[Receiver]
) -> None:
    receiver = start(receivers, Receiver(answer("200 OK"), tls_server_context(ca)))
    outcome = deliver_to(receiver, ca, ssl_context=None)
    assert outcome.outcome == "tls_failed"
    assert receiver.requests == []


@integration
@pytest.mark.parametrize(
    ("address", "allow_loopback", "named"),
    [
        ("127.0.0.1", False, "loopback"),
        ("169.254.169.254", True, "metadata"),
        ("::ffff:127.0.0.1", False, "loopback"),
        ("10.0.0.1", True, "private"),
    ],
)
def test_a_name_that_turns_inward_after_registration_is_refused_at_delivery(
    ca: trustme.CA,
    receivers: list[Receiver],
    address: str,
    allow_loopback: bool,
    named: str,
) -> None:
    receiver = start(receivers, Receiver(answer("200 OK"), tls_server_context(ca)))
    answered = iter([[PUBLIC], [address]])

    def rebinding(host: str, port: int) -> list[str]:
        return next(answered)

    url = f"https://{HOOK_HOST}:{receiver.port}/"
    assert check_url(url, allow_loopback=allow_loopback, resolver=rebinding) == [PUBLIC]
    outcome = deliver_to(receiver, ca, resolver=rebinding, allow_loopback=allow_loopback)
    assert outcome.outcome == "address_forbidden"
    assert address in outcome.detail and named in outcome.detail
    assert "nothing was sent" in outcome.detail
    assert outcome.address is None
    receiver.stop()
    assert receiver.connections == 0


@integration
def test_refusals_at_delivery_send_nothing(receivers: list[Receiver]) -> None:
    receiver = start(receivers, Receiver(answer("200 OK")))
    assert deliver_to(receiver, allow_loopback=False).outcome == "url_not_https"
    outcome = deliver(f"https://127.0.0.1:{receiver.port}/", BODY, HEADERS)
    assert outcome.outcome == "address_forbidden"
    outcome = deliver(f"https://2130706433:{receiver.port}/", BODY, HEADERS)
    assert outcome.outcome == "url_invalid"
    outcome = deliver_to(receiver, resolver=answers())
    assert outcome.outcome == "name_unresolvable"
    receiver.stop()
    assert receiver.connections == 0


@integration
@pytest.mark.parametrize(
    "status", ["302 Found", "307 Temporary Redirect", "308 Permanent Redirect"]
)
def test_a_redirect_is_not_followed(receivers: list[Receiver], status: str) -> None:
    target = start(receivers, Receiver(answer("200 OK")))
    location = f"http://127.0.0.1:{target.port}/inside"
    redirecting = start(receivers, Receiver(answer(status, (f"Location: {location}",))))
    outcome = deliver_to(redirecting)
    assert outcome.outcome == "redirect_not_followed"
    assert outcome.status_code == int(status.split()[0])
    assert location in outcome.detail
    assert len(redirecting.requests) == 1
    target.stop()
    assert target.connections == 0


@integration
def test_an_error_status_is_an_http_error_with_the_start_of_the_answer(
    receivers: list[Receiver],
) -> None:
    receiver = start(receivers, Receiver(answer("500 Internal Server Error", (), b"db down\n")))
    outcome = deliver_to(receiver)
    assert (outcome.outcome, outcome.status_code) == ("http_error", 500)
    assert outcome.detail == "HTTP 500 Internal Server Error: db down"
    assert deliver_to(start(receivers, Receiver(answer("410 Gone")))).detail == "HTTP 410 Gone"


@integration
def test_an_answer_that_is_not_http_is_a_bad_response(receivers: list[Receiver]) -> None:
    def garbage(conn: socket.socket, receiver: Receiver) -> None:
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    outcome = deliver_to(start(receivers, Receiver(garbage)))
    assert outcome.outcome == "bad_response"


@integration
def test_a_receiver_hanging_up_without_an_answer_is_connection_failed(
    receivers: list[Receiver],
) -> None:
    outcome = deliver_to(start(receivers, Receiver(lambda conn, receiver: None)))
    assert outcome.outcome == "connection_failed"
    assert "without answering" in outcome.detail


@integration
def test_headers_without_end_are_not_read_past_the_bound(receivers: list[Receiver]) -> None:
    def endless_headers(conn: socket.socket, receiver: Receiver) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while receiver.bytes_sent < 64 * 1024 * 1024:
            receiver.bytes_sent += conn.send(b"X-Pad: " + b"p" * 1000 + b"\r\n")

    receiver = start(receivers, Receiver(endless_headers))
    outcome = deliver_to(receiver, max_response_bytes=1024)
    assert outcome.outcome == "bad_response"
    assert str(64 * 1024 + 1024) in outcome.detail
    assert receiver.bytes_sent < 64 * 1024 * 1024


@integration
def test_a_refused_connection_is_connection_failed() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    outcome = deliver(
        f"http://{HOOK_HOST}:{port}/",
        BODY,
        HEADERS,
        allow_loopback=True,
        resolver=answers("127.0.0.1"),
    )
    assert (outcome.outcome, outcome.address) == ("connection_failed", "127.0.0.1")
    assert "refused" in outcome.detail


@integration
def test_a_receiver_that_never_answers_is_cut_at_the_deadline(
    ca: trustme.CA, receivers: list[Receiver]
) -> None:
    def silent(conn: socket.socket, receiver: Receiver) -> None:
        receiver.stopping.wait()

    receiver = start(receivers, Receiver(silent, tls_server_context(ca)))
    outcome = deliver_to(receiver, ca, holding=True, timeout_seconds=1.0)
    assert outcome.outcome == "timeout"
    assert "waiting for the answer" in outcome.detail
    assert outcome.duration_ms < 10_000  # loose: the receiver would hold it 30 s


@integration
def test_a_tls_handshake_that_never_completes_is_cut_at_the_deadline(ca: trustme.CA) -> None:
    with socket.create_server(("127.0.0.1", 0)) as never_accepting:
        outcome = deliver(
            f"https://{HOOK_HOST}:{never_accepting.getsockname()[1]}/",
            BODY,
            HEADERS,
            allow_loopback=True,
            resolver=answers("127.0.0.1"),
            ssl_context=tls_client_context(ca),
            timeout_seconds=1.0,
        )
    assert outcome.outcome == "timeout"
    assert "TLS handshake" in outcome.detail


@integration
def test_a_trickled_answer_is_cut_at_the_overall_deadline(receivers: list[Receiver]) -> None:
    def trickle(conn: socket.socket, receiver: Receiver) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while not receiver.stopping.wait(0.2):  # a header byte every 0.2 s, for ever
            conn.sendall(b"X")
            receiver.bytes_sent += 1

    receiver = start(receivers, Receiver(trickle))
    outcome = deliver_to(receiver, holding=True, timeout_seconds=1.0)
    assert outcome.outcome == "timeout"
    # Loose: each byte would reset a per-read timeout, and the trickle lasts 30 s.
    assert outcome.duration_ms < 10_000


@integration
def test_a_resolver_that_hangs_is_cut_at_the_deadline() -> None:
    released = threading.Event()

    def hangs(host: str, port: int) -> list[str]:
        released.wait(30)
        return ["127.0.0.1"]

    try:
        outcome = deliver(
            "https://hooks.example.com/", BODY, HEADERS, resolver=hangs, timeout_seconds=0.5
        )
    finally:
        released.set()
    assert outcome.outcome == "timeout"
    assert "resolving" in outcome.detail


@integration
def test_a_huge_answer_is_not_read_past_the_bound(receivers: list[Receiver]) -> None:
    size = 64 * 1024 * 1024

    def flood(conn: socket.socket, receiver: Receiver) -> None:
        head = f"HTTP/1.1 500 Internal Server Error\r\nContent-Length: {size}\r\n\r\n"
        conn.sendall(head.encode())
        chunk = b"x" * 65536
        while receiver.bytes_sent < size:
            receiver.bytes_sent += conn.send(chunk)

    receiver = start(receivers, Receiver(flood))
    outcome = deliver_to(receiver, max_response_bytes=1024)
    assert (outcome.outcome, outcome.status_code) == ("http_error", 500)
    assert "x" * 100 in outcome.detail
    assert receiver.bytes_sent < size  # we hung up; the rest was never read


def test_headers_that_cannot_be_sent_are_the_callers_mistake() -> None:
    for headers in ({"x-bad": "a\r\nInjected: 1"}, {"bad name": "x"}, {"Content-Length": "1"}):
        with pytest.raises(ValueError, match="header"):
            deliver("https://hooks.example.com/", BODY, headers, resolver=answers(PUBLIC))


def _bracketed(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _canonical(address: str) -> str:
    return str(ipaddress.ip_address(address))
