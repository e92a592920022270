"""Addresses and app references: the identities every layer shares."""

from __future__ import annotations

from dataclasses import dataclass

KIND_PREFIX = {"Dataset": "dataset", "DatasetView": "view"}


@dataclass(frozen=True, order=True)
class AppRef:
    """A Qrvey application and the creator user who owns it."""

    user_id: str
    app_id: str


def address_of(kind: str, name: str) -> str:
    """``dataset.orders`` / ``view.orders-emea``."""
    return f"{KIND_PREFIX[kind]}.{name}"


def kind_of(address: str) -> str:
    prefix = address.split(".", 1)[0]
    for kind, known in KIND_PREFIX.items():
        if known == prefix:
            return kind
    raise ValueError(f"not an address: {address!r}")
