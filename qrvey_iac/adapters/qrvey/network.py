"""The HTTP client's sockets on plain asyncio streams.

httpx reaches the network through httpcore, whose default backend wraps every socket in
anyio. For this client, which keeps P calls in flight for thousands of calls, that layer
was the largest part of its CPU: anyio's typed-attribute lookups and cancel-scope checks on
every read and write, and a poll() system call per pooled connection each time the pool
assigned a request (httpcore asks every idle connection whether its server hung up). With
asyncio streams the same question is answered from the stream's state, and a call costs
1.0-1.2 ms of CPU instead of 1.8 (3,000 calls, 16 in flight, against the emulator).

Only the socket layer changes: httpcore still speaks HTTP/1.1 and pools the connections,
httpx still maps every failure to its own exception types (ConnectError, ReadTimeout, ...),
which the sender's retry rules rely on.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

SocketOption = tuple[int, int, int | bytes] | tuple[int, int, None, int]
HAPPY_EYEBALLS_DELAY = 0.25   # try the next address of a host after this long (RFC 8305; anyio's too)


def pooled_transport(limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> httpx.AsyncHTTPTransport | None:
    """httpx's transport with its pool on asyncio streams; None where the environment
    names a proxy (httpx applies HTTP(S)_PROXY and NO_PROXY only to a transport it builds)."""
    if urllib.request.getproxies():
        return None
    transport = httpx.AsyncHTTPTransport(limits=limits)
    # The one place this reaches inside httpx (pinned below 1.0): the pool it just built is
    # replaced by the same pool on another backend. tests/adapters/test_network.py fails
    # if a new httpx stops using it.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context or httpx.create_ssl_context(trust_env=True),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=AsyncioBackend(),
    )
    return transport


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
            # httpcore asks an idle pooled connection whether its server hung up, reset it
            # or sent something unasked: the stream already knows, no system call needed
            reader = self._reader
            return (reader.at_eof() or reader.exception() is not None or self._writer.transport.is_closing()
                    or bool(getattr(reader, "_buffer", b"")))
        names = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername", "socket": "socket"}
        return self._writer.get_extra_info(names[info]) if info in names else None

