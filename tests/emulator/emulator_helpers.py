"""Shared helpers for the emulator tests: paths, request bodies and a client factory."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette

from qrvey_iac.emulator import EmulatorTransport

API_KEY = "local"
SALES = "/devapi/v4/user/u-sales/app/a-sales"  # source app
EMEA = "/devapi/v4/user/u-emea/app/a-emea"  # target app for views


@asynccontextmanager
async def make_client(app: Starlette, api_key: str | None = API_KEY) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"x-api-key": api_key} if api_key is not None else {}
    transport = EmulatorTransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator", headers=headers) as client:
        yield client


def dataset_body(name: str = "Orders", **overrides: Any) -> dict:
    """A valid Create Dataset body shaped like the seed tutorial's example."""
    body = {
        "name": name,
        "datasources": [
            {
                "name": "Test",
                "connectionId": "84b500d7-71c8-4b1f-adf4-f1eb0000973d",
                "datasourceId": "f54dd925-2599-432c-9567-403230bdafed",
                "database": "shop",
                "tableName": "orders",
                "connectorType": "MSSQL_LIVE",
            }
        ],
        "columns": [
            {"columnName": "Total", "columnType": "NUMBER", "origColumnType": "NUMBER", "appId": "a-sales"},
            {"columnName": "Region", "columnType": "STRING"},
        ],
    }
    body.update(overrides)
    return body


def connection_body(**overrides: Any) -> dict:
    body = {"name": "Shop DB", "connectorType": "MYSQL_LIVE", "host": "db.local", "user": "app", "password": "s3cret"}
    body.update(overrides)
    return body


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def error_message(response: httpx.Response, status: int) -> str:
    """Assert ``response`` is a Qrvey error with ``status``; return its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error"
    assert isinstance(body["date"], int)
    [error] = body["errors"]
    assert error["messageDetails"] is True
    assert isinstance(error["stack"], str) and error["stack"]
    return error["message"]


async def create_dataset(client: httpx.AsyncClient, prefix: str = SALES, **overrides: Any) -> dict:
    return ok(await client.post(f"{prefix}/qollect/dataset", json=dataset_body(**overrides)))


async def share(client: httpx.AsyncClient, dataset_id: str, is_public: bool = True, prefix: str = SALES) -> dict:
    url = f"{prefix}/qollect/dataset/{dataset_id}/publishVersion?runPublicTrigger=true"
    return ok(await client.post(url, json={"isPublic": is_public}))


async def create_view(client: httpx.AsyncClient, source: dict, target: str = EMEA, **extra: Any) -> dict:
    body = {"appId": source["appId"], "userId": source["userId"], **extra}
    return ok(await client.post(f"{target}/qollect/dataset/clone/connection/{source['connectionId']}", json=body))


async def shared_dataset_with_view(client: httpx.AsyncClient) -> tuple[dict, dict]:
    source = await create_dataset(client)
    await share(client, source["datasetId"])
    view = await create_view(client, source)
    return source, view


def http_client(base_url: str, api_key: str = API_KEY) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"x-api-key": api_key}, timeout=5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Wait until a server process listens on ``port`` (it must not exit first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else process.returncode
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {port}")
