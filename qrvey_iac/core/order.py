"""Natural order for what people read: ``ds-2`` before ``ds-10``, as a person would list them."""

from __future__ import annotations

import re
from collections.abc import Iterable

_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple:
    """Sort key: runs of digits compare as numbers, the rest as text.

    ``re.split`` with a capturing group alternates text and digits, text first (possibly
    empty), so two keys compare text with text and number with number at every position.
    The text itself breaks ties (``ds-7`` and ``ds-007`` are still told apart, stably).
    """
    parts = _DIGITS.split(text)
    return (tuple(int(part) if index % 2 else part for index, part in enumerate(parts)), text)


def naturally_sorted(items: Iterable[str]) -> list[str]:
    return sorted(items, key=natural_key)
