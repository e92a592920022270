"""When to retry a Qrvey call, how long to wait, and how fast to send.

Backoff is "full jitter": before retry n (n = 1, 2, ...) the client waits a
uniform random time in ``[0, min(max_delay, base_delay * 2**(n-1))]``. A
``Retry-After`` header (seconds or an HTTP-date) replaces that draw, capped at
``max_delay`` so a confused server cannot park the tool for an hour.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

# Raised before a single byte of the request left: safe to repeat any call.
NOT_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
)
# Mistakes on our side (bad URL scheme, invalid header): repeating cannot help.
PERMANENT_TRANSPORT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.UnsupportedProtocol, httpx.LocalProtocolError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a call is retried.

    ``attempts`` counts every try, the first included: 1 means never retry.
    """

    attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 20.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy delays must not be negative")

    def ceiling(self, retry_number: int) -> float:
        """The longest backoff before retry ``retry_number`` (1-based)."""
        exponent = min(retry_number - 1, 62)
        return min(self.max_delay, self.base_delay * (2 ** exponent))

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        return rng.uniform(0.0, self.ceiling(retry_number))

    def delay(self, retry_number: int, rng: random.Random, retry_after: float | None) -> float:
        """The wait before retry ``retry_number``: the server's word if it gave one."""
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        return self.backoff(retry_number, rng)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, or None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until(text, now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


def _seconds_until(http_date: str, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = now or datetime.now(timezone.utc)
    return max(0.0, (when - current).total_seconds())


def is_retryable_transport(exc: httpx.TransportError) -> bool:
    return not isinstance(exc, PERMANENT_TRANSPORT_ERRORS)


def was_not_sent(exc: httpx.TransportError) -> bool:
    """True when the server surely never saw the request."""
    return isinstance(exc, NOT_SENT_ERRORS)


class TokenBucket:
    """At most ``rate`` requests per second across every task that shares it.

    The bucket holds ``burst`` tokens. A caller takes one; when none is left it
    goes into debt and sleeps until its token has accrued, so concurrent
    callers queue up in order without polling.
    """

    def __init__(
        self,
        rate: float,
        sleep: Callable[[float], Awaitable[None]],
        *,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate limit must be a positive number of requests per second")
        self._rate = rate
        self._burst = burst
        self._sleep = sleep
        self._clock = clock
        self._tokens = burst
        self._stamp = clock()

    async def acquire(self) -> float:
        """Take a token, waiting if needed; returns the wait in seconds."""
        now = self._clock()
        accrued = (now - self._stamp) * self._rate
        self._tokens = min(self._burst, self._tokens + accrued)
        self._stamp = now
        self._tokens -= 1.0
        wait = -self._tokens / self._rate if self._tokens < 0 else 0.0
        if wait > 0:
            await self._sleep(wait)
        return wait
