"""The Qrvey port (core.kinds.base.QrveyApi) over the HTTP client: 404s become None/False."""

from __future__ import annotations

from typing import Any

from qrvey_iac.adapters.qrvey.client import QrveyClient
from qrvey_iac.core.errors import NotFoundError
from qrvey_iac.core.keys import AppRef


class QrveyGateway:
    def __init__(self, client: QrveyClient) -> None:
        self.client = client

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

    async def load(self, app: AppRef, dataset_id: str) -> dict[str, Any]:
        return await self.client.load_dataset(app, dataset_id)
