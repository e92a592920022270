"""The Qrvey port (core.kinds.base.QrveyApi) over the HTTP client: 404s become None/False."""

from __future__ import annotations

from typing import Any

from qrvey_iac.adapters.qrvey.client import QrveyClient
from qrvey_iac.core.errors import NotFoundError
from qrvey_iac.core.keys import AppRef


class QrveyGateway:
    def __init__(self, client: QrveyClient) -> None:
        self.client = client
        self._apps: dict[AppRef, dict[str, Any] | None] = {}     # get_app's answers, for this run

    async def get_app(self, app: AppRef) -> dict[str, Any] | None:
        """The app, None when Qrvey says it does not exist; asked once per app per run."""
        if app not in self._apps:
            try:
                self._apps[app] = await self.client.get_app(app)
            except NotFoundError:
                self._apps[app] = None
        return self._apps[app]

    async def read(self, app: AppRef, dataset_id: str) -> dict[str, Any] | None:
        try:
            return await self.client.get_dataset(app, dataset_id)
        except NotFoundError:
            return None

    async def create_dataset(self, app: AppRef, body: dict[str, Any]) -> dict[str, Any]:
        return await self.client.create_dataset(app, body)

    async def clone_view(
        self, app: AppRef, source: AppRef, connection_id: str, name: str, custom_attributes: dict[str, Any] | None
    ) -> dict[str, Any]:
        return await self.client.create_view(app, source, connection_id, name=name,
                                             custom_attributes=custom_attributes)

    async def update_dataset(self, app: AppRef, dataset_id: str, body: dict[str, Any]) -> None:
        await self.client.update_dataset(app, dataset_id, body)

    async def apply_changes(self, app: AppRef, dataset_id: str) -> dict[str, Any]:
        return await self.client.apply_changes(app, dataset_id)

    async def set_shared(self, app: AppRef, dataset_id: str, shared: bool) -> dict[str, Any]:
        return await self.client.set_shared(app, dataset_id, shared)

    async def delete(self, app: AppRef, dataset_id: str) -> bool:
        try:
            await self.client.delete_dataset(app, dataset_id)
        except NotFoundError:
            return False
        return True

    async def list_app(self, app: AppRef) -> list[dict[str, Any]]:
        return await self.client.list_datasets(app)

    async def create_connection(self, app: AppRef, body: dict[str, Any]) -> dict[str, Any]:
        return await self.client.create_connection(app, body)

    async def read_connection(self, app: AppRef, connection_id: str) -> dict[str, Any] | None:
        try:
            return await self.client.get_connection(app, connection_id)
        except NotFoundError:
            return None

    async def update_connection(self, app: AppRef, connection_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.client.update_connection(app, connection_id, body)

    async def delete_connection(self, app: AppRef, connection_id: str) -> bool:
        try:
            await self.client.delete_connection(app, connection_id)
        except NotFoundError:
            return False
        return True

    async def list_connections(self, app: AppRef) -> list[dict[str, Any]]:
        return await self.client.list_connections(app)
    async def load(self, app: AppRef, dataset_id: str) -> dict[str, Any]:
        return await self.client.load_dataset(app, dataset_id)
