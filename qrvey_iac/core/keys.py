"""App references: the identity of a Qrvey application every layer shares."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class AppRef:
    """A Qrvey application and the creator user who owns it."""

    user_id: str
    app_id: str
