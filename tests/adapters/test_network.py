"""The client's transport (adapters/qrvey/network.py: HTTP/1.1 connections on h11 and asyncio
streams, pooled, behind httpx's public transport interface), against small local servers: plain and TLS answers,
every failure mapped to the httpx type the retry rules expect, a kept-alive connection the
server closed never reused, proxies left to httpx."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpcore
import httpx
import pytest

from qrvey_iac.adapters.qrvey import network
from qrvey_iac.adapters.qrvey.client import QrveyClient
from qrvey_iac.core.keys import AppRef

pytestmark = pytest.mark.anyio
LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=4)
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\": 1}\r\n"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def server(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    listening = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
    try:
        yield listening.sockets[0].getsockname()[1]
    finally:
        listening.close()


async def read_request(reader: asyncio.StreamReader) -> None:
    await reader.readuntil(b"\r\n\r\n")


def answering(times: int = 100, close_after: bool = False, accepted: list | None = None) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if accepted is not None:
            accepted.append(writer.get_extra_info("peername"))
        try:
            for _ in range(times):
                await read_request(reader)
                writer.write(OK)
                await writer.drain()
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()
    return handler


def client(**options) -> httpx.AsyncClient:
    transport = network.pooled_transport(LIMITS, **options)
    assert transport is not None
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(2.0))


@pytest.fixture
def connects(monkeypatch) -> list[tuple]:
    """The connections the asyncio backend opened (its connect_tcp calls)."""
    opened: list[tuple] = []
    real_connect = network.AsyncioBackend.connect_tcp

    async def counting(self, *args, **kwargs):
        opened.append(args)
        return await real_connect(self, *args, **kwargs)

    monkeypatch.setattr(network.AsyncioBackend, "connect_tcp", counting)
    return opened


async def test_answers_come_back_over_asyncio_streams_and_connections_are_reused():
    accepted: list = []
    async with server(answering(accepted=accepted)) as port, client() as http:
        for _ in range(5):
            response = await http.get(f"http://127.0.0.1:{port}/x")
            assert response.json() == {"ok": 1}
            assert isinstance(response.extensions["network_stream"], network.AsyncioStream)
    assert len(accepted) == 1        # the pool keeps the connection alive between calls


class SearchedModules:
    """A finder first on sys.meta_path that finds nothing and notes every name searched for."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, name, path=None, target=None):
        self.names.append(name)
        return None


async def test_a_request_searches_for_no_module(monkeypatch):
    # httpcore imports sniffio inside every lock and event it sets up; when sniffio is not
    # installed, each of those imports fails after a search of sys.path (~0.1 ms, about a
    # tenth of a call's CPU: docs/performance.md, "Issue 11, the HTTP plan's extra CPU")
    async with server(answering()) as port, client() as http:
        await http.get(f"http://127.0.0.1:{port}/warm")     # first-use imports happen here
        searched = SearchedModules()
        monkeypatch.setattr(sys, "meta_path", [searched, *sys.meta_path])
        for _ in range(3):
            assert (await http.get(f"http://127.0.0.1:{port}/x")).status_code == 200
    assert searched.names == []


async def test_a_body_is_streamed_and_a_connection_busy_with_one_is_not_shared():
    accepted: list = []
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with server(answering(accepted=accepted)) as port:
        async with httpx.AsyncClient(transport=network.pooled_transport(one), timeout=2.0) as http:
            async with http.stream("GET", f"http://127.0.0.1:{port}/a") as streamed:
                with pytest.raises(httpx.PoolTimeout):      # the only connection is still reading a body
                    await http.get(f"http://127.0.0.1:{port}/b", timeout=httpx.Timeout(2.0, pool=0.1))
                assert b"".join([part async for part in streamed.aiter_bytes()]) == b'{"ok": 1}\r\n'
            assert (await http.get(f"http://127.0.0.1:{port}/c")).status_code == 200
    assert len(accepted) == 1


@pytest.fixture
def sends(monkeypatch) -> list[str]:
    """The request targets handed to a connection (network.Connection), tries included."""
    handed: list[str] = []
    real_send = network.Connection.send

    async def counting(self, request, *timeouts):
        handed.append(request.url.raw_path.decode())
        return await real_send(self, request, *timeouts)

    monkeypatch.setattr(network.Connection, "send", counting)
    return handed


async def test_requests_arriving_together_each_get_a_free_connection_at_the_first_try(connects, sends):
    # httpcore's own pool offered the first idle connection to every request waiting at that
    # moment: all but one found it busy and asked again (a third of a call's CPU at 16 in flight)
    async with server(answering()) as port, client() as http:
        for round_ in range(3):
            answers = await asyncio.gather(*(http.get(f"http://127.0.0.1:{port}/{round_}-{i}") for i in range(4)))
            assert [answer.status_code for answer in answers] == [200] * 4
    assert len(sends) == 12
    assert len(connects) == 4


async def test_idle_connections_beyond_the_keepalive_limit_are_closed(connects):
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=1)
    async with server(answering()) as port:
        async with httpx.AsyncClient(transport=network.pooled_transport(limits), timeout=2.0) as http:
            for round_ in range(2):
                await asyncio.gather(*(http.get(f"http://127.0.0.1:{port}/{round_}-{i}") for i in range(4)))
    assert len(connects) == 4 + 3        # one kept between the rounds


async def test_a_request_cancelled_while_waiting_frees_its_connection_slot():
    async def first_silent_then_answers(reader, writer):
        await read_request(reader)
        await asyncio.sleep(5)

    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with server(first_silent_then_answers) as silent, server(answering()) as port:
        async with httpx.AsyncClient(transport=network.pooled_transport(one), timeout=2.0) as http:
            waiting = asyncio.create_task(http.get(f"http://127.0.0.1:{silent}/never"))
            await asyncio.sleep(0.1)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            answer = await http.get(f"http://127.0.0.1:{port}/next", timeout=httpx.Timeout(2.0, pool=0.5))
            assert answer.status_code == 200


async def test_the_qrvey_client_uses_it_by_default(connects):
    async with server(answering()) as port:
        async with QrveyClient(f"http://127.0.0.1:{port}", "key", parallelism=2) as qrvey:
            assert await qrvey.get_dataset(AppRef("u", "a"), "d1") == {"ok": 1}
    assert connects


async def test_a_connection_the_server_closed_while_idle_is_not_reused():
    async with server(answering(close_after=True)) as port, client() as http:
        first = await http.get(f"http://127.0.0.1:{port}/1")
        await asyncio.sleep(0.05)        # the server's close reaches the idle connection
        second = await http.get(f"http://127.0.0.1:{port}/2")
    assert first.status_code == second.status_code == 200


async def test_a_connection_the_server_reset_while_idle_is_not_reused():
    async def answers_then_resets(reader, writer):
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        await asyncio.sleep(0.02)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # close with RST
        writer.transport.abort()

    async with server(answers_then_resets) as port, client() as http:
        first = await http.get(f"http://127.0.0.1:{port}/1")
        await asyncio.sleep(0.1)         # the reset reaches the idle connection
        second = await http.get(f"http://127.0.0.1:{port}/2")
    assert first.status_code == second.status_code == 200


def answering_with(*answers: bytes, accepted: list | None = None) -> Handler:
    """Answers each request on a connection with the next of ``answers``, then hangs up."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if accepted is not None:
            accepted.append(writer.get_extra_info("peername"))
        try:
            for answer in answers:
                await read_request(reader)
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()
    return handler


CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n4\r\n: 1}\r\n0\r\n\r\n"
CLOSING = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
UNTIL_EOF = b"HTTP/1.0 200 OK\r\n\r\n{\"b\": 2}"          # no length: the body ends when the server closes


async def test_bodies_framed_every_way_are_read_whole_and_a_closing_answer_frees_no_connection(connects):
    async with server(answering_with(CHUNKED, CLOSING)) as port, client() as http:
        chunked = await http.get(f"http://127.0.0.1:{port}/1")
        closing = await http.get(f"http://127.0.0.1:{port}/2")       # the same connection, kept alive
        assert len(connects) == 1
        again = await http.get(f"http://127.0.0.1:{port}/3")         # "Connection: close": a new one
    assert (chunked.json(), closing.json(), again.status_code) == ({"a": 1}, {}, 200)
    assert len(connects) == 2
    async with server(answering_with(UNTIL_EOF)) as port, client() as http:
        assert (await http.get(f"http://127.0.0.1:{port}/")).json() == {"b": 2}


async def test_a_body_cut_short_is_an_error_and_an_unread_one_leaves_its_connection_unused(connects):
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"partial"
    async with server(answering_with(cut)) as port, client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(f"http://127.0.0.1:{port}/")
    async with server(answering()) as port, client() as http:
        async with http.stream("GET", f"http://127.0.0.1:{port}/1") as streamed:
            assert streamed.status_code == 200                      # closed without reading its body
        assert (await http.get(f"http://127.0.0.1:{port}/2")).json() == {"ok": 1}
    assert len(connects) == 3                                       # the second request could not reuse it


async def test_plain_http_builds_no_tls_context(monkeypatch):
    """Loading the trusted certificates takes ~50 ms: only an https connection needs them."""
    built: list[object] = []
    real = httpx.create_ssl_context
    monkeypatch.setattr(httpx, "create_ssl_context", lambda *a, **k: built.append(a) or real(*a, **k))
    async with server(answering()) as port, client() as http:
        assert (await http.get(f"http://127.0.0.1:{port}/")).status_code == 200
    assert built == []


async def test_failures_map_to_the_httpx_types_the_retry_rules_read():
    async def silent(reader, writer):
        await asyncio.sleep(5)

    async def hangs_up(reader, writer):
        await read_request(reader)
        writer.close()

    async with server(silent) as port, client() as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(f"http://127.0.0.1:{port}/", timeout=httpx.Timeout(2.0, read=0.2))
    async with server(hangs_up) as port, client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(f"http://127.0.0.1:{port}/")
    async with server(answering()) as port:
        pass                             # closed: nothing listens on the port any more
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/")


async def test_a_body_the_server_does_not_take_times_out_as_a_write_timeout():
    async def never_reads(reader, writer):
        await asyncio.sleep(5)

    async with server(never_reads) as port, client() as http:
        with pytest.raises(httpx.WriteTimeout):     # more than the loopback's socket buffers hold
            await http.post(f"http://127.0.0.1:{port}/", content=b"x" * 64_000_000,
                            timeout=httpx.Timeout(2.0, write=0.2))


@pytest.mark.parametrize("raised, expected", [
    (httpcore.ConnectTimeout, httpx.ConnectTimeout), (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout), (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.ConnectError, httpx.ConnectError), (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError), (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError), (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProxyError, httpx.ProxyError), (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.NetworkError, httpx.NetworkError), (httpcore.ProtocolError, httpx.ProtocolError),
])
def test_each_httpcore_failure_leaves_as_the_most_specific_httpx_one(raised, expected):
    with pytest.raises(httpx.TransportError) as caught:
        with network.httpx_errors():
            raise raised("the detail")
    assert type(caught.value) is expected and str(caught.value) == "the detail"
    assert isinstance(caught.value.__cause__, raised)


def test_other_exceptions_pass_through_unchanged():
    with pytest.raises(KeyError):
        with network.httpx_errors():
            raise KeyError("not the network's")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate for the TLS server")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


async def test_https_is_verified_against_the_trusted_certificates(certificate):
    cert, key = certificate
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    async with server(answering(), tls=served) as port:
        async with client(ssl_context=trusting) as http:
            response = await http.get(f"https://localhost:{port}/secure")
            assert response.json() == {"ok": 1}
            assert response.extensions["network_stream"].get_extra_info("ssl_object") is not None
        async with client() as http:     # the system's certificates do not know this one
            with pytest.raises(httpx.ConnectError, match="certificate"):
                await http.get(f"https://localhost:{port}/secure")


def test_a_proxy_in_the_environment_leaves_the_transport_to_httpx(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert network.pooled_transport(LIMITS) is None


def recording(seen: list[bytes]) -> Handler:
    """Answers OK to every request on a connection and keeps each request's head."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                seen.append(await reader.readuntil(b"\r\n\r\n"))
                writer.write(OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
    return handler


def header_lines(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines if line)}


async def test_a_direct_exchange_sends_the_clients_headers_and_timeouts(monkeypatch):
    """The request handed straight to the transport carries what the client would have sent:
    its headers (the API key, the user agent, gzip accepted) and its timeouts."""
    seen: list[bytes] = []
    handed: list[httpx.Request] = []
    async with server(recording(seen)) as port:
        transport = network.AsyncioTransport(LIMITS)
        original = transport.handle_async_request

        async def keeping(request: httpx.Request) -> httpx.Response:
            handed.append(request)
            return await original(request)

        monkeypatch.setattr(transport, "handle_async_request", keeping)
        http = httpx.AsyncClient(transport=transport, headers={"x-api-key": "k-123", "User-Agent": "qrvey-iac/test"},
                                 timeout=httpx.Timeout(7.0))
        try:
            exchange = network.Exchange.direct(http, transport)
            response = await exchange.open("POST", f"http://127.0.0.1:{port}/x", b'{"a":1}')
            body = b"".join([part async for part in response.aiter_bytes()])
            await response.aclose()
        finally:
            await http.aclose()
    assert body == b'{"ok": 1}\r\n' and response.status_code == 200 and response.request is handed[0]
    headers = header_lines(seen[0])
    assert seen[0].startswith(b"POST /x HTTP/1.1")
    assert headers["x-api-key"] == "k-123" and headers["user-agent"] == "qrvey-iac/test"
    assert headers["content-length"] == "7" and "gzip" in headers["accept-encoding"]
    assert handed[0].extensions["timeout"] == httpx.Timeout(7.0).as_dict()


async def test_through_a_proxy_the_exchange_goes_through_the_client(monkeypatch):
    sent: list[httpx.Request] = []

    class Recording(httpx.AsyncClient):
        async def send(self, request, **kwargs):
            sent.append(request)
            return httpx.Response(204, request=request)

    http = Recording(headers={"x-api-key": "k"})
    exchange = network.Exchange.via_client(http)
    response = await exchange.open("GET", "http://qrvey.example/y", None)
    await http.aclose()
    assert response.status_code == 204 and sent[0].headers["x-api-key"] == "k"


async def test_the_client_sends_directly_unless_a_proxy_is_set(monkeypatch):
    """QrveyClient: its own transport and a direct exchange; with HTTPS_PROXY set, httpx's
    transports and the client's own send (which applies the proxy)."""
    direct = QrveyClient("http://127.0.0.1:1", "k")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    proxied = QrveyClient("http://127.0.0.1:1", "k")
    try:
        assert direct._sender._http._transport is not None         # noqa: SLF001 (what the test is about)
        assert proxied._sender._http._transport is None             # noqa: SLF001
    finally:
        await direct.aclose()
        await proxied.aclose()
