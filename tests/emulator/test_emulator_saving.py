"""Saving while served: the data file follows the world within save_interval, with few
writes, and a clean shutdown (the app's lifespan, SIGTERM, SIGINT) saves the rest."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from emulator_helpers import SALES, dataset_body, free_port, http_client, ok, wait_for_port

from qrvey_iac.emulator import EmulatorConfig, World
from qrvey_iac.emulator.testing import running_server

REPO_ROOT = Path(__file__).resolve().parents[2]


def saved_ids(path: Path) -> set[str]:
    return set(json.loads(path.read_text())["datasets"]) if path.exists() else set()


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_changes_reach_the_file_within_the_interval_without_a_shutdown(tmp_path):
    path = tmp_path / "world.json"
    with running_server(EmulatorConfig(data_file=path, save_interval=0.1)) as server, \
            http_client(server.base_url) as client:
        created = ok(client.post(f"{SALES}/qollect/dataset", json=dataset_body()))
        wait_until(lambda: created["datasetId"] in saved_ids(path))
        ok(client.delete(f"{SALES}/qollect/dataset/{created['datasetId']}"))
        wait_until(lambda: saved_ids(path) == set())
        assert World.load(path) == server.emulator.world       # while still serving


def test_many_writes_are_saved_a_few_times_not_once_each(tmp_path):
    path, interval, writes = tmp_path / "world.json", 0.25, 120
    with running_server(EmulatorConfig(data_file=path, save_interval=interval)) as server, \
            http_client(server.base_url) as client:
        started = time.monotonic()
        for _ in range(writes):
            ok(client.post(f"{SALES}/qollect/dataset", json=dataset_body()))
        elapsed = time.monotonic() - started
        saves_while_writing = server.emulator.saves
    assert saves_while_writing <= elapsed / interval + 1 < writes
    assert server.emulator.saves <= saves_while_writing + 1          # and once at shutdown, at most
    assert len(saved_ids(path)) == writes


def test_a_clean_shutdown_saves_what_the_interval_did_not(tmp_path):
    path = tmp_path / "world.json"
    with running_server(EmulatorConfig(data_file=path, save_interval=3600)) as server, \
            http_client(server.base_url) as client:
        created = ok(client.post(f"{SALES}/qollect/dataset", json=dataset_body()))
        assert not path.exists()
    assert saved_ids(path) == {created["datasetId"]} and server.emulator.saves == 1


def test_reads_and_rejected_writes_do_not_save(tmp_path):
    path = tmp_path / "world.json"
    with running_server(EmulatorConfig(data_file=path, save_interval=0.05)) as server, \
            http_client(server.base_url) as client:
        ok(client.post(f"{SALES}/qollect/dataset/all"))
        assert client.post(f"{SALES}/qollect/dataset", json={}).status_code == 400
        time.sleep(0.3)
    assert not path.exists() and server.emulator.saves == 0


def test_a_served_world_that_was_loaded_and_not_changed_is_not_rewritten(tmp_path):
    path = tmp_path / "world.json"
    World(datasets={"d1": {"datasetId": "d1"}}).save(path)
    before = path.stat().st_mtime_ns
    with running_server(EmulatorConfig(data_file=path, save_interval=0.05)) as server:
        time.sleep(0.3)
    assert path.stat().st_mtime_ns == before and server.emulator.saves == 0


def test_a_failed_save_is_logged_and_tried_again(tmp_path, caplog):
    path = tmp_path / "world.json"
    with running_server(EmulatorConfig(data_file=path, save_interval=0.05)) as server, \
            http_client(server.base_url) as client:
        path.mkdir()                                    # a folder where the file should go
        ok(client.post(f"{SALES}/qollect/dataset", json=dataset_body()))
        wait_until(lambda: "could not save the emulator world" in caplog.text)
        path.rmdir()
        wait_until(lambda: path.is_file())
        assert len(saved_ids(path)) == 1


def test_the_cli_server_saves_on_sigterm(tmp_path):
    path, port = tmp_path / "world.json", free_port()
    command = [sys.executable, "-m", "qrvey_iac", "emulator", "serve", "--port", str(port), "--data", str(path),
               "--save-interval", "3600"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, process)
        with http_client(f"http://127.0.0.1:{port}") as client:
            created = ok(client.post(f"{SALES}/qollect/dataset", json=dataset_body()))
        assert not path.exists()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    finally:
        process.kill()
    assert saved_ids(path) == {created["datasetId"]}


def test_save_interval_must_be_positive_on_the_command_line():
    done = subprocess.run([sys.executable, "-m", "qrvey_iac", "emulator", "serve", "--save-interval", "0"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "--save-interval" in done.stderr     # a usage error: 2 is "changes present"

