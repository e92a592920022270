"""What the engine needs from the outside world, as protocols (DESIGN §2)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from qrvey_iac.core.kinds.base import QrveyApi
from qrvey_iac.core.state import State


# The Qrvey calls every kind is written against; its contract is on the protocol.
QrveyPort = QrveyApi


class StatePort(Protocol):
    def load(self) -> State: ...
    def save(self, state: State) -> None: ...
    def lock(self, command: str, timeout: float = 0.0) -> AbstractContextManager[str]: ...
