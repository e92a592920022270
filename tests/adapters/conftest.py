"""Fixtures for the Qrvey client's unit tests."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from client_fakes import API_KEY, BASE_URL, FakeSleep

from qrvey_iac.adapters.qrvey.client import QrveyClient, RetryPolicy


@pytest.fixture
def fake_sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def make_client(fake_sleep: FakeSleep) -> Callable[..., QrveyClient]:
    """Factory: a client over a MockTransport, fake sleep, seeded rng, fast 5-attempt retries."""

    def factory(handler: Callable, **overrides: Any) -> QrveyClient:
        options: dict[str, Any] = {
            "transport": httpx.MockTransport(handler),
            "sleep": fake_sleep,
            "rng": random.Random(1234),
            "retry": RetryPolicy(attempts=5, base_delay=0.2, max_delay=20.0),
        }
        options.update(overrides)
        return QrveyClient(BASE_URL, API_KEY, **options)

    return factory
