"""What a route handler receives: the world, the caller's scope and the request body."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from qrvey_iac.emulator.config import EmulatorConfig
from qrvey_iac.emulator.errors import not_found
from qrvey_iac.emulator.ids import IdMinter
from qrvey_iac.emulator.world import World


@dataclass
class Call:
    """One authenticated, routed request."""

    world: World
    config: EmulatorConfig
    ids: IdMinter
    user_id: str
    app_id: str
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None  # parsed JSON; None when the request had no body
    load_fails: bool = False  # a load-fail fault was drawn for this request

    def mint_short_id(self) -> str:
        return self.world.claim_id(self.ids.short_id(self.world.taken_ids()))

    def mint_uuid(self) -> str:
        return self.world.claim_id(self.ids.uuid(self.world.taken_ids()))

    def owned_dataset(self, dataset_id: str) -> dict:
        """The dataset if it exists in the path's user and app, else 404."""
        dataset = self.world.datasets.get(dataset_id)
        if dataset is None or not self.owns(dataset, "appId", "userId"):
            raise not_found("Dataset", dataset_id)
        return dataset

    def owned_connection(self, connection_id: str) -> dict:
        connection = self.world.connections.get(connection_id)
        if connection is None or not self.owns(connection, "appid", "userid"):
            raise not_found("Connection", connection_id)
        return connection

    def owns(self, obj: dict, app_key: str, user_key: str) -> bool:
        return obj.get(app_key) == self.app_id and obj.get(user_key) == self.user_id


def utc_now() -> str:
    """ISO-8601 UTC with milliseconds and a Z, like Qrvey's createDate."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
