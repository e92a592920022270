"""The kind registry: every resource kind qrvey-iac manages, looked up by name or address.

Adding a kind means adding its module beside this one (see ``base.Kind``), its tests, and
one entry in ``KINDS`` below. Nothing else in the package names a kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Union

from pydantic import Field

from qrvey_iac.core.kinds.base import Kind
from qrvey_iac.core.kinds.connection import CONNECTION
from qrvey_iac.core.kinds.dataset import DATASET
from qrvey_iac.core.kinds.view import VIEW


class Registry:
    def __init__(self) -> None:
        self._by_name: dict[str, Kind] = {}
        self._by_prefix: dict[str, Kind] = {}

    def register(self, kind: Kind) -> None:
        if kind.name in self._by_name or kind.prefix in self._by_prefix:
            raise ValueError(f"kind {kind.name!r} or address prefix {kind.prefix!r} is registered already")
        missing = set(kind.rules.forces_replacement) ^ set(kind.replacement_checks)
        if missing:
            raise ValueError(f"kind {kind.name}: forces_replacement and replacement_checks differ on {sorted(missing)}")
        self._by_name[kind.name] = kind
        self._by_prefix[kind.prefix] = kind

    def unregister(self, kind: Kind) -> None:
        """Take a kind out again (tests that register a kind of their own)."""
        del self._by_name[kind.name]
        del self._by_prefix[kind.prefix]

    def __iter__(self) -> Iterator[Kind]:
        return iter(self._by_name.values())

    def __getitem__(self, name: str) -> Kind:
        """The kind named ``name`` (a manifest's ``kind:``, a state or plan entry's ``kind``)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"unknown kind {name!r} (known: {', '.join(self.names)})") from None

    def known(self, name: str) -> str:
        """``name`` if a kind has it; a ValueError (a validation error in a model) if not."""
        if name not in self._by_name:
            raise ValueError(f"unknown kind {name!r} (this qrvey-iac knows {', '.join(self.names)})")
        return name

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def of_address(self, address: str) -> Kind | None:
        """The kind an address belongs to, or None when its prefix is no kind's."""
        prefix, dot, name = address.partition(".")
        return self._by_prefix.get(prefix) if dot and name else None

    def document_union(self) -> Any:
        """The manifest document type: one model per kind, told apart by ``kind:``."""
        documents = tuple(kind.document for kind in self)
        return Annotated[Union[documents], Field(discriminator="kind")]  # noqa: UP007 - built at run time


KINDS = Registry()
KINDS.register(CONNECTION)
KINDS.register(DATASET)
KINDS.register(VIEW)

__all__ = ["KINDS", "Kind", "Registry"]
