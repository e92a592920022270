"""The state model (DESIGN §5): what qrvey-iac created, by address.

Pure data: the file format (versions, upgraders) is ``adapters/state/codec.py``; reading,
writing and locking are the stores and lockers in ``adapters/state/``.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qrvey_iac.core.kinds import KINDS

STATE_VERSION = 5     # 5: a resource may record applied_fields; 4: records its owner;
                      # 3: may have a write-ahead sidecar;
                      # 2: a journal entry's ``detail`` is a JournalDetail (1: a free dict)


class ResourceState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    datasetId: str
    appId: str
    userId: str
    connectionId: str | None = None
    shared: bool = False
    protect: bool = False
    applied_hash: str = ""
    source: dict[str, str] | None = None   # views: {address?, datasetId, appId, userId}
    managed: dict[str, list[str]] = {}     # optional keys the manifest manages (so removals show)
    applied_fields: dict[str, str] = {}    # field -> digest of what was applied (core/field_drift.py);
                                           # {}: not recorded yet (drift decided for the whole resource)

    @field_validator("kind")
    @classmethod
    def _registered(cls, value: str) -> str:
        return KINDS.known(value)


class JournalDetail(BaseModel):
    """What a journaled write needs to be recognised and recorded later (see journal.py).

    Every entry carries what the resource will be recorded with (kind, protect,
    applied_hash, managed); the rest depends on the operation.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    protect: bool = False
    applied_hash: str = ""
    managed: dict[str, list[str]] | None = None   # None: not recorded (the record keeps its own)
    applied_fields: dict[str, str] | None = None  # None: not recorded (the record keeps its own)
    previous_hash: str | None = None              # update: the hash the record had before
    shared: bool | None = None                    # share / unshare: the flag sent
    connectionId: str | None = None               # view create: the source's connection
    source: dict[str, str] | None = None          # view create: the source as recorded
    marker: dict[str, str] | None = None          # view create: the ownership marker sent

    @field_validator("kind")
    @classmethod
    def _registered(cls, value: str) -> str:
        return KINDS.known(value)


class JournalEntry(BaseModel):
    """A write sent (or about to be sent) whose outcome is not yet recorded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    op: str
    address: str
    datasetId: str | None = None
    appId: str
    userId: str
    detail: JournalDetail
    started: str = ""


class StateOwner(BaseModel):
    """The environment and endpoint a state was made for: another one's commands refuse it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    environment: str = Field(min_length=1)
    endpoint: str = Field(min_length=1)   # normalised, without credentials; "embedded": the in-process emulator

    def describe(self) -> str:
        return f"environment {self.environment!r} (endpoint {self.endpoint})"


class State(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = STATE_VERSION
    lineage: str = Field(default_factory=lambda: str(uuid.uuid4()))
    serial: int = 0
    resources: dict[str, ResourceState] = Field(default_factory=dict)
    journal: tuple[JournalEntry, ...] = ()
    owner: StateOwner | None = None      # None: not recorded yet (a format-3 state, a new one)

    def with_resource(self, address: str, resource: ResourceState) -> State:
        resources = dict(self.resources)
        resources[address] = resource
        return self.model_copy(update={"resources": resources})

    def without_resource(self, address: str) -> State:
        resources = {k: v for k, v in self.resources.items() if k != address}
        return self.model_copy(update={"resources": resources})

    def with_journal(self, entry: JournalEntry) -> State:
        return self.model_copy(update={"journal": (*self.journal, entry)})

    def without_journal(self, entry_id: str) -> State:
        kept = tuple(e for e in self.journal if e.id != entry_id)
        return self.model_copy(update={"journal": kept})

    def bumped(self) -> State:
        return self.model_copy(update={"serial": self.serial + 1})

    def with_move(self, source: str, destination: str) -> State:
        """``source``'s record under ``destination`` (kind: Moved, ``state mv``): the views
        recorded over it, and the view creates pending over it in the journal, name the new
        address as their source; their ids, like its own, are unchanged."""
        moved = self.without_resource(source).with_resource(destination, self.resources[source])
        resources = {address: _source_moved(record, source, destination) for address, record in moved.resources.items()}
        journal = tuple(
            entry.model_copy(update={"detail": _source_moved(entry.detail, source, destination)})
            for entry in self.journal
        )
        return moved.model_copy(update={"resources": resources, "journal": journal})

    def views_of(self, address: str) -> list[str]:
        return sorted(
            a for a, r in self.resources.items() if r.source and r.source.get("address") == address
        )


def _source_moved(record, source: str, destination: str):
    """A resource record or journal detail whose recorded source is ``source``, pointing at
    ``destination`` instead (anything else as it is)."""
    if not record.source or record.source.get("address") != source:
        return record
    return record.model_copy(update={"source": {**record.source, "address": destination}})
