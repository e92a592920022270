"""The emulator over real HTTP: running_server (uvicorn in a thread) and serve() in a process."""

from __future__ import annotations

import json
import time
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


def test_a_chunked_body_without_a_length_is_read_and_a_request_with_neither_has_none():
    """A body is known to be absent only when neither Content-Length nor Transfer-Encoding is
    sent (the emulator then does not wait for one): a chunked body must still be read."""
    with running_server(EmulatorConfig(api_key="demo")) as server, http_client(server.base_url, "demo") as client:
        raw = json.dumps(dataset_body(datasetId="chunked")).encode()
        sent = client.build_request("POST", f"{SALES}/qollect/dataset", content=iter([raw[:10], raw[10:]]))
        assert sent.headers["transfer-encoding"] == "chunked" and "content-length" not in sent.headers
        assert ok(client.send(sent))["datasetId"] == "chunked"
        assert ok(client.get(f"{SALES}/qollect/dataset/chunked"))["datasetId"] == "chunked"
        error_message(client.post(f"{SALES}/qollect/dataset"), 400)        # a create with no body at all


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


# -- a server that hostile clients cannot hold or crash (issue 12, point 9) -------------------

def raw_exchange(base_url: str, request: bytes, wait: float = 3.0, until_closed: bool = False) -> bytes:
    """Send ``request`` on a plain socket; what the server answered before closing or ``wait``
    (or, unless ``until_closed``, before the end of a JSON answer)."""
    import socket

    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(request)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if not until_closed and b"\r\n\r\n" in answer and answer.endswith(b"}"):
                    break
        except TimeoutError:
            pass
    return answer


def no_traceback_logged(caplog) -> bool:
    return not any(record.exc_info for record in caplog.records) and "Traceback" not in caplog.text


def test_a_300_mb_body_is_413_at_once_over_http(caplog):
    head = (f"POST {SALES}/qollect/dataset HTTP/1.1\r\nHost: x\r\nx-api-key: local\r\n"
            f"Content-Type: application/json\r\nContent-Length: {300 * 1024 * 1024}\r\n\r\n").encode()
    with caplog.at_level(logging.INFO), running_server() as server:
        started = time.monotonic()
        answer = raw_exchange(server.base_url, head + b"[" * 4096, until_closed=True)
        assert time.monotonic() - started < 2.5              # answered, and the connection closed
        assert answer.startswith(b"HTTP/1.1 413 ") and b"connection: close" in answer.lower()
        assert b"over the 16777216 byte limit" in answer
        assert server.emulator.world.datasets == {}
    assert no_traceback_logged(caplog)


def test_a_deeply_nested_body_is_400_without_a_traceback_over_http(caplog):
    with caplog.at_level(logging.INFO), running_server() as server, http_client(server.base_url) as client:
        response = client.post(f"{SALES}/qollect/dataset", content=b"[" * 500_000,
                               headers={"Content-Type": "application/json"})
        assert error_message(response, 400) == "ValidationError: body is nested deeper than 64 levels"
        assert ok(client.post(f"{SALES}/qollect/dataset", json=dataset_body(datasetId="d1")))["datasetId"] == "d1"
    assert no_traceback_logged(caplog)


def test_a_client_that_never_finishes_its_request_head_is_disconnected():
    with running_server(EmulatorConfig(head_timeout=0.5)) as server:
        started = time.monotonic()
        assert raw_exchange(server.base_url, b"", wait=5) == b""                      # sends nothing
        assert raw_exchange(server.base_url, b"GET / HTTP/1.1\r\nHost: x\r\n", wait=5) == b""   # half a head
        assert time.monotonic() - started < 3.0


def test_a_client_trickling_its_head_is_disconnected():
    import socket

    with running_server(EmulatorConfig(head_timeout=0.5)) as server:
        host, port = server.base_url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            closed = False
            try:
                for byte in b"GET /x HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaa":     # a byte every 50 ms, 1.5 s
                    sock.send(bytes([byte]))
                    time.sleep(0.05)
                sock.settimeout(2)
                closed = sock.recv(1) == b""
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            assert closed


def test_the_head_deadline_spares_requests_in_progress_and_kept_alive_connections():
    config = EmulatorConfig(head_timeout=0.4, faults=parse_faults("GET *: latency=800ms"))
    with running_server(config) as server, http_client(server.base_url) as client:
        ok(client.post(f"{SALES}/qollect/dataset", json=dataset_body(datasetId="d1")))
        time.sleep(0.2)                                   # within the deadline: the connection is reused
        assert ok(client.get(f"{SALES}/qollect/dataset/d1"))["datasetId"] == "d1"   # slower than the deadline
        time.sleep(0.8)                                   # past it: closed; httpx reconnects
        assert ok(client.post(f"{SALES}/qollect/dataset/all", json={}))["Count"] == 1


def test_uvicorn_limits_are_set():
    from qrvey_iac.emulator.serve import HeadDeadlineProtocol, make_server

    server = make_server(EmulatorConfig(), "127.0.0.1", 0)
    assert server.config.timeout_keep_alive == 5
    assert server.config.h11_max_incomplete_event_size == 16 * 1024
    assert server.config.limit_concurrency == 1024
    assert server.config.http is HeadDeadlineProtocol
