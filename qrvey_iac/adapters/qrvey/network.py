"""The HTTP client's transport: httpcore's HTTP/1.1 connections on plain asyncio streams.

httpx reaches the network through httpcore, whose default backend wraps every socket in
anyio. This module keeps httpcore's HTTP/1.1 (``httpcore.AsyncHTTPConnection``: h11, TLS,
keep-alive) and swaps the socket layer and the pool, through public interfaces alone:
``httpx.AsyncBaseTransport`` on top, httpcore's ``AsyncNetworkBackend`` /
``AsyncNetworkStream`` below, and a small pool of our own in between (AsyncioTransport says
why). What it buys, and what the plain httpx transport costs instead: docs/performance.md,
"Fourth round" and "Issue 11, the HTTP plan's extra CPU".

Every httpcore failure leaves as the httpx exception httpx itself would raise
(ConnectError, ReadTimeout, ...): the sender's retry rules read those types.
"""

from __future__ import annotations

import asyncio
import select
import ssl
import urllib.request
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

SocketOption = tuple[int, int, int | bytes] | tuple[int, int, None, int]
HAPPY_EYEBALLS_DELAY = 0.25   # try the next address of a host after this long (RFC 8305; anyio's too)

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
    """httpx requests over httpcore's HTTP/1.1 connections on asyncio streams, pooled here.

    The pool is ours rather than ``httpcore.AsyncConnectionPool``: with 16 calls in flight that
    pool was most of a call's CPU (it asks every connection whether it is idle, once for each
    idle one, whenever a request arrives or leaves, and offers one free connection to every
    waiting request, so all but one try again). Here a request takes one idle connection of
    its origin, the one used last, or opens one; measured in docs/performance.md, "Issue 11,
    the HTTP plan's extra CPU".
    """

    def __init__(self, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context or httpx.create_ssl_context(trust_env=True)
        self._keepalive_expiry = limits.keepalive_expiry
        self._max_idle = limits.max_keepalive_connections
        self._slots = asyncio.Semaphore(limits.max_connections) if limits.max_connections else None
        self._idle: dict[tuple[bytes, bytes, int], list[httpcore.AsyncHTTPConnection]] = {}
        self._backend = AsyncioBackend()
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,       # the timeouts travel here
        )
        await self._take_slot(request.extensions.get("timeout", {}).get("pool"))
        try:
            with httpx_errors():
                connection, response = await self._send(core_request)
        except BaseException:
            self._give_slot()
            raise
        origin = _origin_key(core_request)
        return httpx.Response(status_code=response.status, headers=response.headers,
                              stream=ResponseBody(response.stream, lambda: self._release(origin, connection)),
                              extensions=response.extensions)

    async def aclose(self) -> None:
        self._closed = True
        idle = [connection for connections in self._idle.values() for connection in connections]
        self._idle.clear()
        with httpx_errors():
            for connection in idle:
                await connection.aclose()

    async def _send(self, request: httpcore.Request) -> tuple[httpcore.AsyncHTTPConnection, httpcore.Response]:
        """The response, and the connection it holds until its body is closed."""
        while True:
            connection = await self._idle_connection(_origin_key(request))
            reused = connection is not None
            if connection is None:
                connection = httpcore.AsyncHTTPConnection(
                    origin=request.url.origin, ssl_context=self._ssl_context,
                    keepalive_expiry=self._keepalive_expiry, network_backend=self._backend)
            try:
                return connection, await connection.handle_async_request(request)
            except httpcore.ConnectionNotAvailable:
                if not reused:
                    raise
                await connection.aclose()   # closed by the server since it was checked: take another
            except BaseException:
                await connection.aclose()
                raise

    async def _idle_connection(self, origin: tuple[bytes, bytes, int]) -> httpcore.AsyncHTTPConnection | None:
        """The idle connection of ``origin`` used last that can still take a request; the ones
        that expired or that the server closed meanwhile are closed on the way."""
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if connection.is_available() and not connection.has_expired():
                return connection
            await connection.aclose()
        return None

    async def _release(self, origin: tuple[bytes, bytes, int], connection: httpcore.AsyncHTTPConnection) -> None:
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


def _origin_key(request: httpcore.Request) -> tuple[bytes, bytes, int]:
    origin = request.url.origin
    return origin.scheme, origin.host, origin.port


class ResponseBody(httpx.AsyncByteStream):
    """A response body as httpcore streams it, its failures as httpx's; closing it hands its
    connection back (``release``, called once)."""

    def __init__(self, stream: AsyncIterable[bytes], release: Callable[[], Awaitable[None]] | None = None) -> None:
        self._stream = stream
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        closing = getattr(self._stream, "aclose", None)      # httpcore's streams have it; a plain iterable need not
        release, self._release = self._release, None
        try:
            if closing is not None:
                with httpx_errors():
                    await closing()
        finally:
            if release is not None:
                with httpx_errors():
                    await release()


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

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


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
