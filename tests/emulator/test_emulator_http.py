"""The emulator over real HTTP: running_server (uvicorn in a thread) and serve() in a process."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from emulator_helpers import (
    EMEA, SALES, connection_body, dataset_body, error_message, free_port, http_client, ok, wait_for_port,
)

from qrvey_iac.emulator import EmulatorConfig, parse_faults
from qrvey_iac.emulator.testing import running_server

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_both_seed_flows_over_http():
    with running_server(EmulatorConfig(api_key="demo")) as server, http_client(server.base_url, "demo") as client:
        assert server.base_url.startswith("http://127.0.0.1:")
        connection = ok(client.post(f"{SALES}/connections", json=connection_body()))
        from_connection = {"connectionId": connection["connectorid"], "name": "From conn", "tableName": "t"}
        ok(client.post(f"{SALES}/qollect/dataset/datasource", json=from_connection))
        source = ok(client.post(f"{SALES}/qollect/dataset", json=dataset_body()))
        url = f"{SALES}/qollect/dataset/{source['datasetId']}/publishVersion?runPublicTrigger=true"
        ok(client.post(url, json={"isPublic": True}))
        connection_id = ok(client.get(f"{SALES}/qollect/dataset/{source['datasetId']}"))["connectionId"]
        body = {"appId": "a-sales", "userId": "u-sales"}
        view = ok(client.post(f"{EMEA}/qollect/dataset/clone/connection/{connection_id}", json=body))
        assert view["datasetType"] == "VIEW"
        assert set(server.emulator.world.datasets) >= {source["datasetId"], view["datasetId"]}
        assert ok(client.post(f"{SALES}/qollect/dataset/all", json={}))["Count"] == 2


def test_auth_and_not_found_over_http():
    with running_server() as server, http_client(server.base_url, "wrong") as client:
        error_message(client.get(f"{SALES}/qollect/dataset/x"), 401)
        with http_client(server.base_url) as good:
            assert error_message(good.get(f"{SALES}/qollect/dataset/x"), 404) == "Dataset x not found"


def test_drop_over_http_is_a_transport_error_without_log_noise(caplog):
    config = EmulatorConfig(faults=parse_faults("POST /qollect/dataset: drop@first=1, lost-drop@first=2"))
    with caplog.at_level(logging.WARNING), running_server(config) as server:
        with http_client(server.base_url) as client:
            with pytest.raises(httpx.TransportError):
                client.post(f"{SALES}/qollect/dataset", json=dataset_body(datasetId="a"))
            assert server.emulator.world.datasets == {}
            with pytest.raises(httpx.TransportError):
                client.post(f"{SALES}/qollect/dataset", json=dataset_body(datasetId="b"))
            assert list(server.emulator.world.datasets) == ["b"]
            assert ok(client.get(f"{SALES}/qollect/dataset/b"))["datasetId"] == "b"
    assert not [record for record in caplog.records if "ASGI callable" in record.getMessage()]
    assert server.emulator.fault_counts == {"drop": 1, "lost-drop": 1}


def test_429_retry_after_over_http():
    config = EmulatorConfig(faults=parse_faults("* *: 429@first=1 retry-after=3"))
    with running_server(config) as server, http_client(server.base_url) as client:
        response = client.post(f"{SALES}/qollect/dataset/all")
        assert response.headers["Retry-After"] == "3"
        error_message(response, 429)


def test_running_server_stops_on_exit():
    with running_server() as server:
        base_url = server.base_url
    with pytest.raises(httpx.ConnectError), http_client(base_url) as client:
        client.get(f"{SALES}/qollect/dataset/x")


SERVE_SCRIPT = """
import sys
from pathlib import Path
from qrvey_iac.emulator import EmulatorConfig
from qrvey_iac.emulator.serve import serve
serve(EmulatorConfig(api_key="demo", data_file=Path(sys.argv[1]), autosave=False), port=int(sys.argv[2]))
"""


def test_serve_runs_until_interrupted_and_saves_on_shutdown(tmp_path):
    data_file, port = tmp_path / "world.json", free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT, str(data_file), str(port)],
        cwd=REPO_ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, process)
        with http_client(f"http://127.0.0.1:{port}", "demo") as client:
            created = ok(client.post(f"{SALES}/qollect/dataset", json=dataset_body()))
        assert not data_file.exists()  # autosave=False: only the shutdown save writes
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    finally:
        process.kill()
    assert created["datasetId"] in json.loads(data_file.read_text())["datasets"]
