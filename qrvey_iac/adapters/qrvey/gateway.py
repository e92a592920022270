"""The engine's QrveyPort, in domain terms, over the HTTP client and the codec."""

from __future__ import annotations

from typing import Any

from qrvey_iac.adapters.qrvey import codec
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

    async def create_dataset(self, app: AppRef, dataset_id: str, desired: dict[str, Any]) -> dict[str, Any]:
        return await self.client.create_dataset(app, codec.create_body(desired, app, dataset_id))

    async def create_view(
        self, app: AppRef, source: AppRef, connection_id: str, desired: dict[str, Any]
    ) -> dict[str, Any]:
        view = await self.client.create_view(
            app, source, connection_id,
            name=desired["name"], custom_attributes=desired.get("customAttributes"),
        )
        if codec.needs_view_update(view, desired):
            view = await self.update(app, view["datasetId"], desired, is_view=True)
        return view

    async def update(self, app: AppRef, dataset_id: str, desired: dict[str, Any], is_view: bool) -> dict[str, Any]:
        live = await self.client.get_dataset(app, dataset_id)
        await self.client.update_dataset(app, dataset_id, codec.update_body(live, desired, is_view))
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
