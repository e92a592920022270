"""The emulator's in-memory state and its JSON snapshot.

The world is plain dicts: ``connections`` a dict, ``datasets`` a mapping that reads and
edits like one (it also keeps two lookups up to date), so tests can inspect and edit them.
A stored dataset is exactly what Get Dataset returns; a stored connection also keeps its
password, which responses never include.

``save`` writes the whole world as one JSON document, ``load`` reads it back with
``json.load`` and checks it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORLD_FORMAT = "qrvey-iac-emulator-world"
WORLD_VERSION = 1
_SECTIONS = ("datasets", "connections", "datasetOrder", "connectionOrder", "loads", "users", "apps")


class Datasets(MutableMapping[str, dict]):
    """Datasets by id, and two lookups kept up to date by every set and delete: the views
    of a source dataset and the datasets with a connectionId (neither changes once a
    dataset exists). Share, unshare, delete and view create use them instead of scanning
    every dataset."""

    def __init__(self, items: dict[str, dict] | None = None) -> None:
        self._items: dict[str, dict] = {}
        self._views: dict[str, dict[str, None]] = {}         # source datasetId -> view ids
        self._connections: dict[str, dict[str, None]] = {}   # connectionId -> dataset ids
        for dataset_id, dataset in (items or {}).items():
            self[dataset_id] = dataset

    def __getitem__(self, dataset_id: str) -> dict:
        return self._items[dataset_id]

    def __setitem__(self, dataset_id: str, dataset: dict) -> None:
        if dataset_id in self._items:
            self._unindex(dataset_id)
        self._items[dataset_id] = dataset
        self._index(dataset_id, dataset)

    def __delitem__(self, dataset_id: str) -> None:
        self._unindex(dataset_id)
        del self._items[dataset_id]

    def __contains__(self, dataset_id: object) -> bool:
        return dataset_id in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Datasets({self._items!r})"

    def view_ids(self, source_id: str) -> list[str]:
        """Ids of the views whose sourceDataset is ``source_id``."""
        return list(self._views.get(source_id, ()))

    def with_connection(self, connection_id: str) -> list[str]:
        """Ids of the datasets (views included) whose connectionId is ``connection_id``."""
        return list(self._connections.get(connection_id, ()))

    def _index(self, dataset_id: str, dataset: dict) -> None:
        source = dataset.get("sourceDataset")
        if isinstance(source, dict) and isinstance(source.get("datasetId"), str):
            self._views.setdefault(source["datasetId"], {})[dataset_id] = None
        if isinstance(dataset.get("connectionId"), str):
            self._connections.setdefault(dataset["connectionId"], {})[dataset_id] = None

    def _unindex(self, dataset_id: str) -> None:
        dataset = self._items[dataset_id]
        source = dataset.get("sourceDataset")
        if isinstance(source, dict):
            self._views.get(source.get("datasetId"), {}).pop(dataset_id, None)
        self._connections.get(dataset.get("connectionId"), {}).pop(dataset_id, None)


@dataclass
class World:
    """Everything the emulated Qrvey instance knows."""

    datasets: Datasets = field(default_factory=Datasets)
    connections: dict[str, dict] = field(default_factory=dict)
    dataset_order: dict[str, int] = field(default_factory=dict)  # kept after delete: list cursors
    connection_order: dict[str, int] = field(default_factory=dict)
    loads: dict[str, dict] = field(default_factory=dict)  # datasetId -> {"pollsLeft", "fails"}
    users: dict[str, dict] = field(default_factory=dict)  # userid -> user (users.py)
    apps: dict[str, dict[str, dict | None]] = field(default_factory=dict)  # userid -> appid -> app; None: deleted
    revision: int = field(default=0, compare=False)  # +1 per change; saving looks at it
    used_ids: set[str] = field(default_factory=set, compare=False, repr=False)  # see taken_ids
    last_position: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.datasets, Datasets):
            self.datasets = Datasets(self.datasets)
        for dataset in self.datasets.values():
            self._index(dataset)
        self.used_ids.update(self.connections)
        self.used_ids.update(self.users)
        for apps in self.apps.values():
            self.used_ids.update(apps)
        positions = [*self.dataset_order.values(), *self.connection_order.values()]
        self.last_position = max(positions, default=0)

    # -- changes -------------------------------------------------------------

    def mark_changed(self) -> None:
        self.revision += 1

    def put_dataset(self, dataset: dict) -> None:
        dataset_id = dataset["datasetId"]
        if dataset_id not in self.datasets:
            self.dataset_order[dataset_id] = self._next_position()
        self.datasets[dataset_id] = dataset
        self._index(dataset)
        self.mark_changed()

    def remove_dataset(self, dataset_id: str) -> dict:
        self.loads.pop(dataset_id, None)
        self.mark_changed()
        removed = self.datasets.pop(dataset_id)
        self._index(removed)      # its ids stay taken (it may have been set past put_dataset)
        return removed

    def put_connection(self, connection: dict) -> None:
        connection_id = connection["connectorid"]
        if connection_id not in self.connections:
            self.connection_order[connection_id] = self._next_position()
        self.connections[connection_id] = connection
        self.used_ids.add(connection_id)
        self.mark_changed()

    def remove_connection(self, connection_id: str) -> dict:
        self.mark_changed()
        return self.connections.pop(connection_id)

    def taken_ids(self) -> set[str]:
        """Every id ever used in this world (deleted objects' and removed columns' included), for minting."""
        return self.used_ids

    def claim_id(self, candidate: str) -> str:
        """Record a freshly minted id so no later mint repeats it."""
        self.used_ids.add(candidate)
        return candidate

    # -- reads -----------------------------------------------------------------

    def ordered_datasets(self, where: Callable[[dict], bool] | None = None) -> list[dict]:
        """Datasets in creation order (ones added by hand go last, by id); with ``where``, only those it accepts.

        Filtering before sorting: a share or a view create looks up a handful of datasets
        and need not sort all of them.
        """
        every = self.datasets.values()
        chosen = every if where is None else [d for d in every if where(d)]
        return _in_order(chosen, self.dataset_order)

    def ordered_connections(self) -> list[dict]:
        return _in_order(self.connections.values(), self.connection_order)

    def views_of(self, dataset_id: str) -> list[dict]:
        """The views of ``dataset_id``, in creation order."""
        return self._in_order(self.datasets.view_ids(dataset_id))

    def with_connection(self, connection_id: str) -> list[dict]:
        """The datasets whose connectionId is ``connection_id``, in creation order."""
        return self._in_order(self.datasets.with_connection(connection_id))

    # -- persistence -------------------------------------------------------------

    def to_json(self) -> dict:
        return {
            "format": WORLD_FORMAT,
            "version": WORLD_VERSION,
            "datasets": dict(self.datasets),
            "connections": self.connections,
            "datasetOrder": self.dataset_order,
            "connectionOrder": self.connection_order,
            "loads": self.loads,
            "users": self.users,
            "apps": self.apps,
        }

    @classmethod
    def from_json(cls, data: Any) -> World:
        """Rebuild a world from ``to_json`` output; ValueError says what is wrong."""
        _check_world_json(data)
        return cls(
            datasets=Datasets(data.get("datasets", {})),
            connections=dict(data.get("connections", {})),
            dataset_order=dict(data.get("datasetOrder", {})),
            connection_order=dict(data.get("connectionOrder", {})),
            loads=dict(data.get("loads", {})),
            users=dict(data.get("users", {})),
            apps={user: dict(apps) for user, apps in data.get("apps", {}).items()},
        )

    def file_text(self) -> str:
        """The data file: the world as one JSON document.

        Neither indented nor sorted: with ``indent`` the json module encodes in Python
        rather than in C, and sorting adds a quarter; a served emulator makes this text on
        its event loop (docs/emulator.md, Persistence)."""
        return json.dumps(self.to_json()) + "\n"

    def save(self, path: Path) -> None:
        write_atomically(Path(path), self.file_text())

    @classmethod
    def load(cls, path: Path) -> World:
        path = Path(path)
        try:
            with path.open(encoding="utf-8") as stream:
                return cls.from_json(json.load(stream, parse_constant=refuse_non_json))
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ValueError(f"{path}: not a valid emulator data file: {exc}") from None

    # -- internals ---------------------------------------------------------------

    def _in_order(self, dataset_ids: list[str]) -> list[dict]:
        return _in_order([self.datasets[dataset_id] for dataset_id in dataset_ids], self.dataset_order)

    def _next_position(self) -> int:
        self.last_position += 1
        return self.last_position

    def _index(self, dataset: dict) -> None:
        self.used_ids.add(dataset.get("datasetId", ""))
        self.used_ids.add(dataset.get("connectionId", ""))
        for column in dataset.get("columns", []):
            self.used_ids.add(column.get("columnId", ""))


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path``: a temp file in the same folder, fsync, rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def refuse_non_json(constant: str) -> None:
    """``parse_constant`` for the json module: NaN, Infinity and -Infinity are no JSON (RFC 8259),
    and the emulator's answers could not carry them (app.JsonAnswer). A data file or a request
    body holding one is refused, as a JSON server's parser refuses it."""
    raise ValueError(f"{constant} is not JSON")


def _check_world_json(data: Any) -> None:
    """Raise ValueError naming the first part of ``data`` that is not a valid world."""
    if not isinstance(data, dict):
        raise ValueError("emulator world must be a JSON object")
    if data.get("format", WORLD_FORMAT) != WORLD_FORMAT or data.get("version", WORLD_VERSION) != WORLD_VERSION:
        raise ValueError(f"emulator world must have format {WORLD_FORMAT!r} version {WORLD_VERSION}")
    for name in _SECTIONS:
        if not isinstance(data.get(name, {}), dict):
            raise ValueError(f"emulator world: {name} must be an object")
    for name in ("datasets", "connections", "users"):
        for key, value in data.get(name, {}).items():
            if not isinstance(value, dict):
                raise ValueError(f"emulator world: {name}.{key} must be an object")
    for name in ("datasetOrder", "connectionOrder"):
        for key, value in data.get(name, {}).items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"emulator world: {name}.{key} must be an integer")
    for user, apps in data.get("apps", {}).items():
        if not isinstance(apps, dict) or not all(app is None or isinstance(app, dict) for app in apps.values()):
            raise ValueError(f"emulator world: apps.{user} must map app ids to objects (null: deleted)")
    for key, load in data.get("loads", {}).items():
        if not isinstance(load, dict) or not isinstance(load.get("pollsLeft"), int) or "fails" not in load:
            raise ValueError(f"emulator world: loads.{key} must be an object with pollsLeft and fails")


def _in_order(objects: Iterable[dict], order: dict[str, int]) -> list[dict]:
    """By creation order; objects put in the world by hand (no order) last, by id."""
    unplaced = float("inf")
    return sorted(objects, key=lambda obj: (order.get(_object_id(obj), unplaced), _object_id(obj)))


def _object_id(obj: dict) -> str:
    return obj.get("datasetId") or obj.get("connectorid") or ""


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable where the platform allows it."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
