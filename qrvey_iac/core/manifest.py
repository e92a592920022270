"""The loaded, resolved set of resources a plan is built from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Field

from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.kinds import KINDS, Kind
from qrvey_iac.core.kinds.base import ADDRESS_SYNTAX, ExternalSource, Frozen, SourceRef
from qrvey_iac.core.sealing import Sealer


@dataclass(frozen=True)
class Resource:
    """One manifest document, with its app resolved, its managed document, and where it came from."""

    address: str
    kind: str                      # a registered kind's name (KINDS)
    app: AppRef
    app_alias: str
    spec: Any                      # the kind's spec model
    depends_on: tuple[str, ...]    # managed addresses this one needs first
    file: str = ""
    line: int = 0
    environment: str = ""          # the environment whose marker the managed document carries
    desired: dict[str, Any] = field(init=False, compare=False)   # the managed document, made from spec

    def __post_init__(self) -> None:
        object.__setattr__(self, "desired", self.definition.desired(self.address, self.spec, self.environment))

    @property
    def definition(self) -> Kind:
        return KINDS[self.kind]

    @property
    def protect(self) -> bool:
        return self.spec.protect

    @property
    def source(self) -> SourceRef | None:
        return self.definition.source(self.spec)

    @property
    def source_address(self) -> str | None:
        source = self.source
        return source.address if source else None

    @property
    def external_source(self) -> ExternalSource | None:
        source = self.source
        return source.external if source else None

    @property
    def broken(self) -> frozenset[tuple]:
        """Spec paths that failed validation: none (see Salvaged)."""
        return frozenset()


@dataclass(frozen=True)
class Salvaged:
    """A manifest document that failed validation, kept as far as it is valid, for the checks
    between documents only (it never reaches a plan): its address exists, so a view of it is
    checked against it rather than told its source is unknown, and its own valid references
    are checked too.

    ``spec`` holds the fields that are valid on their own (list items too), ``broken`` the
    spec paths that are not (``("shared",)``, ``("columns", 1)``): a check reads a field only
    when it is not broken, so a field already reported brings no second, follow-up problem.
    """

    address: str
    kind: str
    spec: Any                       # the kind's spec model, built from its valid fields only
    broken: frozenset[tuple]
    depends_on: tuple[str, ...]     # the valid references: source (when valid) and metadata.dependsOn
    source_address: str | None

    @property
    def definition(self) -> Kind:
        return KINDS[self.kind]


# -- instructions: documents about addresses, not resources (README, "Moves and removals") ----

INSTRUCTION_KINDS = ("Moved", "Removed")
Address = Annotated[str, Field(pattern=ADDRESS_SYNTAX)]


class MovedSpec(Frozen):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    from_: Address = Field(alias="from", description="The address in the state (the old metadata.name).")
    to: Address = Field(description="The address in the manifests (the new metadata.name), of the same kind.")


class MovedDocument(Frozen):
    """``kind: Moved``: the object recorded at ``spec.from`` is the one now declared at
    ``spec.to``. Planned as a move (the state entry renamed, the marker updated), never as a
    delete and a create; once done it is a no-op, so it may stay in the manifests."""

    apiVersion: Literal["qrvey-iac/v1"]
    kind: Literal["Moved"]
    spec: MovedSpec


class RemovedSpec(Frozen):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    from_: Address = Field(alias="from", description="The address to stop managing (no longer declared).")


class RemovedDocument(Frozen):
    """``kind: Removed``: stop managing ``spec.from`` without deleting it in Qrvey (planned as
    ``forget``: the state entry goes and the object loses its ownership marker)."""

    apiVersion: Literal["qrvey-iac/v1"]
    kind: Literal["Removed"]
    spec: RemovedSpec


def document_kinds() -> tuple[str, ...]:
    """Every ``kind:`` a manifest document may have: the registered kinds, then the instructions."""
    return (*KINDS.names, *INSTRUCTION_KINDS)


def document_union() -> Any:
    """The manifest document type: one model per registered kind, and Moved and Removed."""
    documents = (*(kind.document for kind in KINDS), MovedDocument, RemovedDocument)
    return Annotated[Union[documents], Field(discriminator="kind")]  # noqa: UP007 - built at run time


@dataclass(frozen=True)
class Moved:
    """A ``kind: Moved`` document, checked against the manifests (adapters/manifest_moves.py)."""

    from_address: str
    to_address: str
    file: str = ""
    line: int = 0           # of spec.from

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class Removed:
    """A ``kind: Removed`` document, checked against the manifests."""

    address: str
    file: str = ""
    line: int = 0           # of spec.from

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class Manifest:
    resources: dict[str, Resource] = field(default_factory=dict)
    moves: tuple[Moved, ...] = ()              # kind: Moved, in file order
    removals: tuple[Removed, ...] = ()        # kind: Removed, in file order
    digest: str = ""
    secrets: frozenset[str] = frozenset()   # values read through ${env:X}: masked in output
    seal_key: bytes = field(default=b"", repr=False)   # keys the digests of secrets (core/sealing.py); never stored
    environment: str = ""                   # the environment the manifests were loaded for (its marker)

    @property
    def sealer(self) -> Sealer:
        """How digests stored in the state and in plans cover this manifest's secrets."""
        return Sealer(self.secrets, self.seal_key)

    def counts(self) -> list[tuple[str, int]]:
        """(plural, how many) for every registered kind, in registry order."""
        kinds = [resource.kind for resource in self.resources.values()]
        return [(kind.plural, kinds.count(kind.name)) for kind in KINDS]
