"""Settings of one emulator instance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qrvey_iac.emulator.faults import FaultSet

TERMINAL_STATUSES = ("LOADED", "ACTIVE")
SOURCE_DELETE_MODES = ("orphan", "refuse", "cascade")
UNKNOWN_APP_MODES = ("create", "refuse")   # a path's user and app the world lacks: made on first use, or 404
# How a listing (POST .../all) answers (listing.py): with a DynamoDB cursor (the default), with a
# lower-case items array and a nextToken, or with no cursor at all (a Total, a Count of all, nothing).
LIST_SHAPES = ("cursor", "items-token", "total", "count", "unpaged")


@dataclass
class EmulatorConfig:
    """How the emulator behaves; every field has a safe default."""

    api_key: str = "local"
    data_file: Path | None = None
    autosave: bool = True       # while served: save data_file every save_interval s if changed
    save_interval: float = 2.0
    seed: int = 0
    latency_ms: float = 0
    faults: FaultSet | None = None
    terminal_status: str = "LOADED"
    load_polls: int = 2
    load_seconds: float = 0.0   # a load also takes at least this long (wall clock) before it ends
    on_source_delete: str = "orphan"
    unknown_apps: str = "create"   # see users.py: "refuse" answers 404 for an app not created
    list_shape: str = "cursor"
    max_body_bytes: int = 16 * 1024 * 1024   # a larger request body is refused with 413, unread
    max_body_depth: int = 64                 # a body nested deeper is refused with 400
    body_timeout: float = 30.0               # a body slower than this is refused with 408
    head_timeout: float = 10.0               # served: a connection not sending a request head in time is closed
    # other answers to qrvey-api.md's open route questions: operation -> "METHOD /path", e.g.
    # {"dataset.update": "POST /qollect/dataset/{datasetId}/update"} (routes.route_table)
    routes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.data_file is not None:
            self.data_file = Path(self.data_file)
        if self.terminal_status not in TERMINAL_STATUSES:
            raise ValueError(f"terminal_status must be one of {TERMINAL_STATUSES}, got {self.terminal_status!r}")
        if self.on_source_delete not in SOURCE_DELETE_MODES:
            raise ValueError(
                f"on_source_delete must be one of {SOURCE_DELETE_MODES}, got {self.on_source_delete!r}"
            )
        if self.unknown_apps not in UNKNOWN_APP_MODES:
            raise ValueError(f"unknown_apps must be one of {UNKNOWN_APP_MODES}, got {self.unknown_apps!r}")
        if self.list_shape not in LIST_SHAPES:
            raise ValueError(f"list_shape must be one of {LIST_SHAPES}, got {self.list_shape!r}")
        if self.load_seconds < 0:
            raise ValueError(f"load_seconds must be >= 0, got {self.load_seconds}")
        if self.load_polls < 0:
            raise ValueError(f"load_polls must be >= 0, got {self.load_polls}")
        if not self.save_interval > 0:
            raise ValueError(f"save_interval must be > 0 seconds, got {self.save_interval}")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {self.latency_ms}")
        self._check_body_limits()

    def _check_body_limits(self) -> None:
        limits = (self.max_body_bytes >= 1, self.max_body_depth >= 1, self.body_timeout > 0, self.head_timeout > 0)
        if not all(limits):
            raise ValueError("max_body_bytes, max_body_depth, body_timeout and head_timeout must be positive")
