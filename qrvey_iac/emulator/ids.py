"""Seeded id minting: the same seed and the same requests give the same ids."""

from __future__ import annotations

import random
import uuid
from collections.abc import Container

SHORT_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
SHORT_ID_LENGTH = 9


class IdMinter:
    """Mints Qrvey-looking short ids and UUIDs from one seeded generator."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(f"ids/{seed}")

    def short_id(self, taken: Container[str] = ()) -> str:
        """A 9-character id from [A-Za-z0-9_-] that is not in ``taken``."""
        while True:
            candidate = "".join(self._random.choices(SHORT_ID_ALPHABET, k=SHORT_ID_LENGTH))
            if candidate not in taken:
                return candidate

    def uuid(self, taken: Container[str] = ()) -> str:
        """A version-4 UUID string that is not in ``taken``."""
        while True:
            candidate = str(uuid.UUID(int=self._random.getrandbits(128), version=4))
            if candidate not in taken:
                return candidate
