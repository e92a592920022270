"""RetryPolicy, Retry-After parsing and the token bucket, on their own."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qrvey_iac.adapters.qrvey.retry import RetryPolicy, TokenBucket, parse_retry_after

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("-3", 0.0),
        ("Sun, 01 Mar 2026 12:00:42 GMT", 42.0),
        ("Sun, 01 Mar 2026 11:59:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after(header, seconds):
    assert parse_retry_after(header, now=NOW) == seconds


def test_policy_rejects_nonsense():
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=-1)


@given(
    attempts=st.integers(1, 10),
    base=st.floats(0.0, 5.0),
    cap=st.floats(0.0, 60.0),
    retry_number=st.integers(1, 200),
    seed=st.integers(0, 2**32),
)
def test_backoff_stays_within_a_growing_capped_ceiling(attempts, base, cap, retry_number, seed):
    policy = RetryPolicy(attempts=attempts, base_delay=base, max_delay=cap)
    delay = policy.backoff(retry_number, random.Random(seed))
    assert 0.0 <= delay <= policy.ceiling(retry_number) <= cap
    assert policy.ceiling(retry_number) <= policy.ceiling(retry_number + 1)


@given(retry_after=st.floats(0.0, 1e6), cap=st.floats(0.0, 100.0))
def test_server_delay_is_used_but_capped(retry_after, cap):
    policy = RetryPolicy(max_delay=cap)
    assert policy.delay(1, random.Random(0), retry_after) == min(retry_after, cap)


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.anyio
async def test_token_bucket_refills_with_time():
    clock = ManualClock()
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)

    bucket = TokenBucket(4.0, sleep, clock=clock)
    assert await bucket.acquire() == 0.0
    assert await bucket.acquire() == pytest.approx(0.25)
    assert await bucket.acquire() == pytest.approx(0.5)
    clock.now += 10.0  # long idle: the bucket refills only up to its burst
    assert await bucket.acquire() == 0.0
    assert await bucket.acquire() == pytest.approx(0.25)
    assert waits == pytest.approx([0.25, 0.5, 0.25])


def test_token_bucket_needs_a_positive_rate():
    async def sleep(delay: float) -> None:
        return None

    with pytest.raises(ValueError):
        TokenBucket(0, sleep)
