"""The HTTP client's transport: HTTP/1.1 over plain asyncio streams, pooled here.

httpx reaches the network through httpcore, whose connections take three anyio locks per
request, each acquired with a pass through the event loop, and whose default backend wraps
every socket in anyio. This module speaks HTTP/1.1 with h11 (the protocol library httpcore
itself uses) on asyncio streams, through public interfaces alone: ``httpx.AsyncBaseTransport``
on top, ``Connection`` (h11 and one ``AsyncioStream``) below, and a small pool of our own in
between (AsyncioTransport says why). What it buys, and what the plain httpx transport costs
instead: docs/performance.md, "Fourth round", "Issue 11, the HTTP plan's extra CPU" and
"Issue 11, the loop's passes per request".

Every failure leaves as the httpx exception httpx itself would raise (ConnectError,
ReadTimeout, ...): the sender's retry rules read those types.
"""

from __future__ import annotations

import asyncio
import select
import ssl
import time
import urllib.request
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import h11
import httpcore
import httpx

SocketOption = tuple[int, int, int | bytes] | tuple[int, int, None, int]
HAPPY_EYEBALLS_DELAY = 0.25   # try the next address of a host after this long (RFC 8305; anyio's too)
READ_SIZE = 64 * 1024         # bytes asked of the socket at a time
MAX_ANSWER_HEAD = 100 * 1024  # an answer's status line and headers together, at most
Origin = tuple[bytes, bytes, int]   # scheme, host, port

# httpcore's exceptions and the httpx ones they become, most specific first (the first match wins)
ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


def pooled_transport(limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> AsyncioTransport | None:
    """The transport for ``limits``; None where the environment names a proxy (httpx applies
    HTTP(S)_PROXY and NO_PROXY only to a transport it builds itself)."""
    if urllib.request.getproxies():
        return None
    return AsyncioTransport(limits, ssl_context)


@contextmanager
def httpx_errors() -> Iterator[None]:
    """Re-raise an httpcore exception as its httpx counterpart (see ERRORS)."""
    try:
        yield
    except Exception as exc:
        for core_type, httpx_type in ERRORS:
            if isinstance(exc, core_type):
                raise httpx_type(str(exc)) from exc
        raise


class Exchange:
    """One request out and its answer streamed back: what the sender needs of an HTTP client.

    ``direct`` (a transport of our own, or the emulator's): the request is built and handed to
    the transport as it is, with the client's headers and timeouts. That is what
    ``httpx.AsyncClient.send`` does, without the parts the Qrvey client never uses (cookies,
    auth flows, redirects, event hooks): the cookie jar's look at every answer and the header
    merge of every request were a third of httpx's function calls in a plan of 1,500 objects
    (docs/performance.md, "Issue 11, a request's own cost"). Where httpx builds the transports
    itself (a proxy from the environment), ``via_client`` sends through the client.
    """

    def __init__(self, client: httpx.AsyncClient, transport: httpx.AsyncBaseTransport | None) -> None:
        self._client = client
        self._transport = transport
        self._headers = client.headers
        self._extensions = {"timeout": client.timeout.as_dict()}

    @classmethod
    def via_client(cls, client: httpx.AsyncClient) -> Exchange:
        return cls(client, None)

    @classmethod
    def direct(cls, client: httpx.AsyncClient, transport: httpx.AsyncBaseTransport) -> Exchange:
        return cls(client, transport)

    async def open(self, method: str, url: str, content: bytes | None) -> httpx.Response:
        """The response with its body not read yet: the caller reads it, then closes it."""
        if self._transport is None:
            request = self._client.build_request(method, url, content=content)
            return await self._client.send(request, stream=True)
        request = httpx.Request(method, url, headers=self._headers, content=content, extensions=self._extensions)
        response = await self._transport.handle_async_request(request)
        response.request = request
        return response


class AsyncioTransport(httpx.AsyncBaseTransport):
    """httpx requests over HTTP/1.1 connections of our own (``Connection``), pooled here.

    The pool is ours rather than ``httpcore.AsyncConnectionPool``: with 16 calls in flight that
    pool was most of a call's CPU (it asks every connection whether it is idle, once for each
    idle one, whenever a request arrives or leaves, and offers one free connection to every
    waiting request, so all but one try again). Here a request takes one idle connection of
    its origin, the one used last, or opens one; measured in docs/performance.md, "Issue 11,
    the HTTP plan's extra CPU".
    """

    def __init__(self, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context     # built at the first https connection (the CA bundle takes ~50 ms)
        self._keepalive_expiry = limits.keepalive_expiry
        self._max_idle = limits.max_keepalive_connections
        self._slots = asyncio.Semaphore(limits.max_connections) if limits.max_connections else None
        self._idle: dict[Origin, list[Connection]] = {}
        self._backend = AsyncioBackend()
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        await self._take_slot(timeouts.get("pool"))
        url = request.url
        origin = (url.raw_scheme, url.raw_host, url.port or (443 if url.raw_scheme == b"https" else 80))
        try:
            with httpx_errors():
                connection, answer = await self._send(origin, request, timeouts)
        except BaseException:
            self._give_slot()
            raise
        return httpx.Response(
            status_code=answer.status_code, headers=answer.headers.raw_items(),
            stream=ResponseBody(connection.body(timeouts.get("read")), lambda: self._release(origin, connection)),
            extensions={"http_version": b"HTTP/" + answer.http_version, "reason_phrase": answer.reason,
                        "network_stream": connection.stream})

    async def aclose(self) -> None:
        self._closed = True
        idle = [connection for connections in self._idle.values() for connection in connections]
        self._idle.clear()
        with httpx_errors():
            for connection in idle:
                await connection.aclose()

    async def _send(self, origin: Origin, request: httpx.Request, timeouts: dict[str, float | None]
                    ) -> tuple[Connection, h11.Response]:
        """The answer's head, and the connection it holds until its body is closed."""
        connection = self._idle_connection(origin) or await self._connect(origin, timeouts.get("connect"))
        try:
            return connection, await connection.send(request, timeouts.get("write"), timeouts.get("read"))
        except BaseException:
            await connection.aclose()
            raise

    async def _connect(self, origin: Origin, timeout: float | None) -> Connection:
        scheme, host, port = origin
        if scheme not in (b"http", b"https"):
            raise httpcore.UnsupportedProtocol(f"Request URL has an unsupported protocol '{scheme.decode()}://'.")
        stream = await self._backend.connect_tcp(host.decode("ascii"), port, timeout=timeout)
        if scheme == b"https":
            if self._ssl_context is None:
                self._ssl_context = httpx.create_ssl_context(trust_env=True)
            self._ssl_context.set_alpn_protocols(["http/1.1"])
            stream = await stream.start_tls(self._ssl_context, server_hostname=host.decode("ascii"), timeout=timeout)
        return Connection(stream, self._keepalive_expiry)

    def _idle_connection(self, origin: Origin) -> Connection | None:
        """The idle connection of ``origin`` used last that can still take a request; the ones
        that expired or that the server closed meanwhile are closed on the way."""
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if connection.is_available() and not connection.has_expired():
                return connection
            connection.close()
        return None

    async def _release(self, origin: Origin, connection: Connection) -> None:
        """A response's body was closed: its connection goes back to the pool when it can take
        another request, and is closed otherwise."""
        self._give_slot()
        idle_now = sum(len(connections) for connections in self._idle.values())
        if self._closed or not connection.is_available() or (self._max_idle is not None and idle_now >= self._max_idle):
            await connection.aclose()
        else:
            self._idle.setdefault(origin, []).append(connection)

    async def _take_slot(self, timeout: float | None) -> None:
        if self._slots is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no connection of the pool became free in time") from None

    def _give_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()


class ResponseBody(httpx.AsyncByteStream):
    """A response body as a connection streams it, its failures as httpx's; closing it hands its
    connection back (``release``, called once)."""

    def __init__(self, stream: AsyncIterable[bytes], release: Callable[[], Awaitable[None]] | None = None) -> None:
        self._stream = stream
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        closing = getattr(self._stream, "aclose", None)      # an async generator has it; a plain iterable need not
        release, self._release = self._release, None
        try:
            if closing is not None:
                with httpx_errors():
                    await closing()
        finally:
            if release is not None:
                with httpx_errors():
                    await release()


class Connection:
    """One HTTP/1.1 connection of the pool: h11 keeps the protocol's state and framing, an
    ``AsyncioStream`` carries the bytes. A request and its answer's head take one pass
    through the event loop, waiting for the answer (httpcore's connections took three more, for
    their locks: docs/performance.md, "Issue 11, the loop's passes per request").

    Reusable once the answer's body was read to its end and both sides are done; any failure
    or cancellation on the way leaves it unusable, and the pool closes it."""

    def __init__(self, stream: AsyncioStream, keepalive_expiry: float | None) -> None:
        self._stream = stream
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_ANSWER_HEAD)
        self._keepalive_expiry = keepalive_expiry
        self._idle_since: float | None = None      # None while a request is on it
        self._broken = False

    async def send(self, request: httpx.Request, write_timeout: float | None, read_timeout: float | None
                   ) -> h11.Response:
        """Send ``request`` (its head, then its body) and return the answer's head."""
        self._idle_since = None
        self._broken = True        # until the answer's body has been read to its end
        head = h11.Request(method=request.method, target=request.url.raw_path, headers=request.headers.raw)
        try:
            await self._stream.write(self._protocol(head), write_timeout)
            async for chunk in request.stream:      # type: ignore[union-attr]
                await self._stream.write(self._protocol(h11.Data(data=chunk)), write_timeout)
            await self._stream.write(self._protocol(h11.EndOfMessage()), write_timeout)
        except httpcore.WriteError:
            pass        # the server may have answered before it stopped reading (a 413): read that answer
        while True:
            event = await self._next_event(read_timeout)
            if isinstance(event, h11.Response):
                return event
            if not isinstance(event, h11.InformationalResponse):
                raise httpcore.RemoteProtocolError(f"unexpected {type(event).__name__} before the answer's head")

    async def body(self, read_timeout: float | None) -> AsyncIterator[bytes]:
        """The answer's body, part by part; at its end the connection can take the next request."""
        while True:
            event = await self._next_event(read_timeout)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise httpcore.RemoteProtocolError(f"unexpected {type(event).__name__} in the answer's body")
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
            self._broken = False
            self._idle_since = time.monotonic()

    @property
    def stream(self) -> AsyncioStream:
        return self._stream

    def is_available(self) -> bool:
        return not self._broken       # cleared only when both sides finished and h11 began a new cycle

    def has_expired(self) -> bool:
        """Idle past the keep-alive expiry, or closed, reset or written to by the server since."""
        if self._idle_since is not None and self._keepalive_expiry is not None:
            if time.monotonic() - self._idle_since > self._keepalive_expiry:
                return True
        return self._stream.get_extra_info("is_readable")

    def close(self) -> None:
        self._broken = True
        self._stream.close()

    async def aclose(self) -> None:
        self.close()

    def _protocol(self, event: h11.Event) -> bytes:
        try:
            return self._h11.send(event) or b""
        except h11.LocalProtocolError as exc:
            raise httpcore.LocalProtocolError(str(exc)) from exc

    async def _next_event(self, timeout: float | None) -> h11.Event:
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpcore.RemoteProtocolError(str(exc)) from exc
            if event is not h11.NEED_DATA:
                if event is h11.PAUSED:     # a client never pipelines: nothing may follow a whole answer
                    raise httpcore.RemoteProtocolError("data after the end of the answer")
                return event
            data = await self._stream.read(READ_SIZE, timeout)
            if data == b"" and self._h11.their_state is h11.SEND_RESPONSE:
                raise httpcore.RemoteProtocolError("Server disconnected without sending a response.")
            self._h11.receive_data(data)


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=(local_address, 0) if local_address else None,
                    happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or exc.__class__.__name__) from exc
        sock = writer.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(reader, writer)


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError:
            raise httpcore.ReadTimeout("reading the answer timed out") from None
        except OSError as exc:
            raise httpcore.ReadError(str(exc) or exc.__class__.__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError:
            raise httpcore.WriteTimeout("sending the request timed out") from None
        except OSError as exc:
            raise httpcore.WriteError(str(exc) or exc.__class__.__name__) from exc

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        self._writer.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError:
            self._writer.close()
            raise httpcore.ConnectTimeout("the TLS handshake timed out") from None
        except (OSError, ssl.SSLError) as exc:      # a certificate refused is an SSLError
            self._writer.close()
            raise httpcore.ConnectError(str(exc) or exc.__class__.__name__) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return self._idle_but_readable()
        names = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername", "socket": "socket"}
        return self._writer.get_extra_info(names[info]) if info in names else None

    def _idle_but_readable(self) -> bool:
        """httpcore asks this of an idle pooled connection: did its server hang up, reset it or
        send something unasked? Then the connection is dropped rather than reused."""
        reader, transport = self._reader, self._writer.transport
        if reader.at_eof() or reader.exception() is not None or transport.is_closing():
            return True
        # an end of stream behind data the reader holds is still readable at the socket
        sock = self._writer.get_extra_info("socket")
        return sock is not None and sock.fileno() >= 0 and bool(select.select([sock], [], [], 0)[0])
