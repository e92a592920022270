"""Send one prepared request with retries: the engine under ``QrveyClient.call``.

Retry rules. 429, 500, 502, 503, 504 and network failures are retried with the
backoff of :class:`RetryPolicy`. A call that is not idempotent (a create) is
repeated only when the server surely did not act on it: a 429, or a failure to
connect. Any other failure after the request went out raises
:class:`OutcomeUnknownError` at once; a later layer settles what happened.

Each attempt has an overall deadline, from connecting to the last byte of the answer
(httpx's timeouts are per read: a body trickled a byte every 20 s never trips a 30 s one), and
the answer a size cap; an attempt past its deadline fails as a timeout does (retried when
safe), an answer over the cap is an UnusableAnswerError at once (never retried).

Each attempt holds one of ``parallelism`` slots and, when a rate limit is set,
one token. On the ``qrvey_iac.http`` logger each attempt logs one DEBUG line and each
retry another (the wait and its reason); a call that was retried logs one WARNING line
when it ends, answered or not, summing up its retries: a flaky minute of a 1,000-object
refresh reads as one line per object, not one per attempt. No line and no error carries
the API key or a value read through ``${env:X}`` (a path may hold one: an unmanaged
source's id).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from qrvey_iac.adapters.qrvey.network import Exchange
from qrvey_iac.adapters.qrvey.slots import Slots
from qrvey_iac.adapters.qrvey.responses import Redactor, decode_success, error_from_response
from qrvey_iac.adapters.qrvey.retry import (
    RETRYABLE_STATUSES,
    RetryPolicy,
    TokenBucket,
    is_retryable_transport,
    parse_retry_after,
    was_not_sent,
)
from qrvey_iac.core.errors import AuthError, OutcomeUnknownError, QrveyIacError, TransportError, UnusableAnswerError

logger = logging.getLogger("qrvey_iac.http")

RAISE_ON_404 = object()  # marker: a 404 is an error, not a result
DEFAULT_DEADLINE = 120.0   # seconds per attempt, connect to last byte (environment setting callDeadline)
MIB = 1024 * 1024
DEFAULT_MAX_ANSWER_BYTES = 64 * MIB   # environment setting maxAnswerMiB


class CallDeadlineError(httpx.TimeoutException):
    """An attempt whose answer was not complete within the deadline per call. A timeout to the
    retry rules: the request may have been acted on."""


@dataclass(frozen=True)
class PreparedRequest:
    route: str
    method: str
    path: str  # from the base URL on, query included: what logs and errors show
    body: Any


@dataclass(frozen=True)
class _Retry:
    """A failed attempt that may be repeated."""

    error: QrveyIacError  # raised when no attempt is left
    reason: str
    retry_after: float | None
    ambiguous: bool  # the server may have acted on it


class Sender:
    """Retries, concurrency slots, rate limit and logging around one HTTP exchange."""

    def __init__(
        self,
        http: Exchange,
        base_url: str,
        redact: Redactor,
        *,
        parallelism: int,
        retry: RetryPolicy,
        rate_limit: float | None,
        sleep: Callable[[float], Awaitable[None]],
        rng: random.Random,
        deadline: float = DEFAULT_DEADLINE,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        key_name: str = "",
    ) -> None:
        """``key_name``: where the API key comes from (the environment variable), named in a 401 or 403."""
        if not deadline > 0 or max_answer_bytes < 1:
            raise ValueError("the deadline per call and the answer size cap must be positive")
        self._http = http
        self._deadline = deadline
        self._max_answer_bytes = max_answer_bytes
        self._base_url = base_url
        self._key_name = key_name
        self._redact = redact
        self._retry = retry
        self._sleep = sleep
        self._rng = rng
        self._slots = Slots(parallelism)
        self._bucket = TokenBucket(rate_limit, sleep) if rate_limit is not None else None

    async def send(self, request: PreparedRequest, idempotent: bool, gone_result: Any = RAISE_ON_404, *,
                   need_object: bool = False, ahead: bool = False) -> Any:
        """The decoded JSON of the first successful attempt, or the typed error.

        ``gone_result`` is returned for a 404 that follows an attempt the
        server may have acted on: a delete whose first answer was lost.
        ``need_object``: a success must answer a JSON object (see ``decode_success``).
        ``ahead``: each attempt takes a freed slot before waiting calls without it (a listing's
        pages: see slots.py).
        """
        retried: list[str] = []      # the reason of each retry, for the summary line
        try:
            answer = await self._send(request, idempotent, gone_result, need_object, ahead, retried)
        except QrveyIacError as exc:
            if retried:
                self._summarise(request, retried, f"failed ({exc.__class__.__name__})")
            raise
        if retried:
            self._summarise(request, retried, "answered")
        return answer

    async def _send(
        self, request: PreparedRequest, idempotent: bool, gone_result: Any, need_object: bool, ahead: bool,
        retried: list[str],
    ) -> Any:
        attempts = self._retry.attempts
        ambiguous = False
        for attempt in range(1, attempts + 1):
            try:
                response = await self._attempt(request, attempt, ahead)
            except httpx.TransportError as exc:
                retry = self._on_transport_error(request, exc, idempotent)
            else:
                if response.is_success:
                    return decode_success(response, request.method, request.path, self._redact,
                                          need_object=need_object)
                if response.status_code == 404 and ambiguous and gone_result is not RAISE_ON_404:
                    logger.info("%s %s -> 404 after an unanswered attempt: already gone",
                                request.method, self._redact(request.path))
                    return gone_result
                retry = self._on_error_status(request, response, idempotent, ambiguous)
            ambiguous = ambiguous or retry.ambiguous
            if attempt == attempts:
                raise _marked(retry.error, ambiguous)
            retried.append(retry.reason)
            await self._wait(request, attempt, retry)
        raise AssertionError("unreachable: the loop returns or raises")

    async def _attempt(self, request: PreparedRequest, attempt: int, ahead: bool = False) -> httpx.Response:
        async with self._slots.taken(ahead):
            if self._bucket is not None:
                await self._bucket.acquire()
            started = time.perf_counter()
            try:
                response = await self._exchange(request)
            except httpx.TransportError as exc:
                self._log_attempt(request, attempt, started, self._describe(exc))
                raise
            except UnusableAnswerError as exc:
                self._log_attempt(request, attempt, started, f"HTTP {exc.status}, {exc.message}")
                raise
        self._log_attempt(request, attempt, started, f"HTTP {response.status_code}")
        return response

    async def _exchange(self, request: PreparedRequest) -> httpx.Response:
        """One request and its whole answer, within the deadline per call and the size cap."""
        deadline = asyncio.timeout(self._deadline)
        try:
            async with deadline:
                response = await self._http.open(request.method, self._base_url + request.path,
                                                 _encode(request.body))
                try:
                    body = await self._read_capped(request, response)
                finally:
                    await response.aclose()
        except TimeoutError:
            if not deadline.expired():
                raise
            raise CallDeadlineError(f"no complete answer within {self._deadline:g} s, the deadline per "
                                    "call (the environment's callDeadline)") from None
        return _read_answer(response, body)

    async def _read_capped(self, request: PreparedRequest, response: httpx.Response) -> bytes:
        """The answer's body (decoded), refused once it passes ``max_answer_bytes``."""
        limit = self._max_answer_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise self._too_large(request, response, f"declares {int(declared)} bytes")
        parts: list[bytes] = []
        size = 0
        async for part in response.aiter_bytes():
            size += len(part)
            if size > limit:
                raise self._too_large(request, response, f"has more than {limit} bytes")
            parts.append(part)
        return b"".join(parts)

    def _too_large(self, request: PreparedRequest, response: httpx.Response, what: str) -> UnusableAnswerError:
        limit = self._max_answer_bytes
        cap = f"{limit // MIB} MiB" if limit % MIB == 0 else f"{limit} byte"
        message = (f"the answer {what}, over the {cap} cap on an answer (the environment's "
                   "maxAnswerMiB); nothing of it was used")
        return UnusableAnswerError(response.status_code, message, request.method, self._redact(request.path))

    def _on_transport_error(self, request: PreparedRequest, exc: httpx.TransportError, idempotent: bool) -> _Retry:
        reason = self._describe(exc)
        if not is_retryable_transport(exc):
            raise TransportError(request.method, self._redact(request.path), reason) from None
        sent = not was_not_sent(exc)
        if sent and not idempotent:
            raise OutcomeUnknownError(request.method, self._redact(request.path), reason) from None
        return _Retry(TransportError(request.method, self._redact(request.path), reason), reason, None, sent)

    def _on_error_status(
        self, request: PreparedRequest, response: httpx.Response, idempotent: bool, ambiguous: bool
    ) -> _Retry:
        error = error_from_response(response, request.method, request.path, self._redact)
        if isinstance(error, AuthError):
            error = error.naming(self._redact(self._base_url), self._key_name)
        status = response.status_code
        if status not in RETRYABLE_STATUSES:
            raise _marked(error, ambiguous)
        acted = status != 429  # a 5xx may come after the server committed the write
        reason = f"HTTP {status}: {error.message}"
        if acted and not idempotent:
            raise OutcomeUnknownError(request.method, self._redact(request.path), reason)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return _Retry(error, reason, retry_after, acted)

    async def _wait(self, request: PreparedRequest, attempt: int, retry: _Retry) -> None:
        delay = self._retry.delay(attempt, self._rng, retry.retry_after)
        source = "Retry-After" if retry.retry_after is not None else "backoff"
        logger.debug(
            "%s %s failed (%s); retrying in %.3f s (%s), attempt %d of %d",
            request.method, self._redact(request.path), retry.reason, delay, source, attempt + 1, self._retry.attempts,
        )
        await self._sleep(delay)

    def _summarise(self, request: PreparedRequest, retried: list[str], outcome: str) -> None:
        """One WARNING line for a call that was retried: how it ended, after how many attempts,
        and why each retry was needed (equal reasons counted once)."""
        reasons = Counter(retried)
        why = "; ".join(reason if count == 1 else f"{reason} (x{count})" for reason, count in reasons.items())
        logger.warning("%s %s: %s on attempt %d of %d after %s: %s",
                       request.method, self._redact(request.path), outcome, len(retried) + 1, self._retry.attempts,
                       "1 retry" if len(retried) == 1 else f"{len(retried)} retries", why)

    def _log_attempt(self, request: PreparedRequest, attempt: int, started: float, outcome: str) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        logger.debug(
            "%s %s -> %s in %.0f ms (attempt %d of %d)",
            request.method, self._redact(request.path), outcome, elapsed_ms, attempt, self._retry.attempts,
        )

    def _describe(self, exc: httpx.TransportError) -> str:
        detail = str(exc).strip()
        return self._redact(f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__)


def _marked(error: QrveyIacError, ambiguous: bool) -> QrveyIacError:
    """``error``, the last of a call, marked ``nothing_sent`` when it proves that no attempt was
    acted on: a 401 or 403 (refused before anything was done) or a transport error that is
    retried only because it failed to connect, ``ambiguous`` False (every attempt before, and
    a transport failure's own, failed so)."""
    error.nothing_sent = not ambiguous and isinstance(error, (AuthError, TransportError))
    return error


def _encode(body: Any) -> bytes | None:
    if body is None:
        return None
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def _read_answer(streamed: httpx.Response, body: bytes) -> httpx.Response:
    """The answer as a response of its own, its body read. httpx leaves a streamed response in
    a reference cycle (it and its stream wrapper point at each other): broken here, so both
    are freed by reference counting as soon as the answer is decoded, rather than by the
    cyclic collector (docs/performance.md, commit b7c802c)."""
    headers = [(name, value) for name, value in streamed.headers.multi_items()
               if name.lower() not in ("content-encoding", "content-length")]     # the body is decoded
    streamed.stream = httpx.ByteStream(b"")
    return httpx.Response(streamed.status_code, headers=headers, content=body, extensions=streamed.extensions)
