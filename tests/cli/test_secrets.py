"""Secrets stay secret everywhere (issue 12, point 5).

The API key and every value read through ${env:X} never reach output, the state (with its
sidecar and backup), plan files, --debug HTTP logs, captured logs or tracebacks; and no hash
stored in those files can be used to recover a short secret offline.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from qrvey_iac.core.diff import canonical_hash
from qrvey_iac.core.kinds import KINDS

REPO = Path(__file__).resolve().parents[2]
SOURCE_ID = "Zq7partnerSRC91"         # an unmanaged view source's datasetId, from ${env:QI_SOURCE_ID}
PASSWORD = "hunter2-Xk9"              # a value in a dataset's document, from ${env:QI_DB_PASSWORD}
PARTNER = ("u-partner", "a-partner")

PARTNER_VIEW = """\
apiVersion: qrvey-iac/v1
kind: DatasetView
metadata: {name: partner-orders}
spec:
  app: apac
  source: {appId: a-partner, userId: u-partner, datasetId: "${env:QI_SOURCE_ID}"}
  name: Partner orders
"""


# -- the API key ------------------------------------------------------------------------------


@pytest.fixture
def listening_port():
    """A TCP port that accepts connections (the kernel's backlog) and never answers: enough
    for an HTTP client to get as far as sending the request headers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


@pytest.mark.parametrize("key", ["k3y-Sekr1t-abc\r", "k3y-Sekr1t-abc\n", "k3y-\x1bSekr1t-abc", "k3y-Sekr1t\x7f-abc",
                                 " k3y-Sekr1t-abc", "k3y-Sekr1t-abc\u200b"])
def test_an_api_key_with_a_control_character_is_refused_without_echoing_it(project, monkeypatch, listening_port, key):
    config = project.root / "qrvey-iac.yaml"
    config.write_text(config.read_text().replace("https://abcde.qrveyapp.com", f"http://127.0.0.1:{listening_port}"))
    monkeypatch.setenv("QRVEY_API_KEY", key)
    for command in (["apply", "--env", "prod", "--auto-approve"], ["plan", "--env", "prod"]):
        result = project.run(*command)
        assert result.exit_code == 1, result.output
        assert "Error: qrvey-iac.yaml: environments.prod.apiKeyEnv: environment variable QRVEY_API_KEY" in result.stderr
        assert "its value is not shown" in result.stderr
        assert "Sekr1t" not in result.output
        assert not (project.root / "state" / "prod.json").exists()


def test_a_key_error_names_the_character_not_the_key(project, monkeypatch):
    monkeypatch.setenv("QRVEY_API_KEY", "k3y-Sekr1t-abc\r")
    result = project.run("plan", "--env", "prod")
    assert "holds a control character (U+000D)" in result.stderr
    monkeypatch.setenv("QRVEY_API_KEY", "k3y-Sekr1t-abc ")
    assert "starts or ends with a space" in project.run("plan", "--env", "prod").stderr
    monkeypatch.setenv("QRVEY_API_KEY", "k3y-Sekr1t-äbc")
    assert "outside printable ASCII" in project.run("plan", "--env", "prod").stderr


def test_a_nul_in_a_key_is_a_flaw_too():
    """A process environment cannot hold NUL; a key from elsewhere (a test, a wrapper) can."""
    from qrvey_iac.adapters.config import api_key_flaw

    assert api_key_flaw("k3y-\x00Sekr1t") == "holds a control character (U+0000)"
    assert api_key_flaw("k3y Sekr1t-abc") is None       # a space inside is a valid header value
    assert api_key_flaw("qrvey-iac-embedded-emulator") is None


# -- ${env:X} values: the whole workflow, every file and every line ---------------------------


def seed_partner_source(project, dataset_id: str = SOURCE_ID) -> None:
    """The partner's shared dataset, made in the (persisted) emulator world: Qrvey's side."""
    from qrvey_iac.adapters.qrvey.client import QrveyClient
    from qrvey_iac.core.keys import AppRef
    from qrvey_iac.emulator import EmulatorConfig, EmulatorTransport, create_app

    app = create_app(EmulatorConfig(api_key="k", data_file=project.world_path))

    async def seed():
        async with QrveyClient("http://e", "k", transport=EmulatorTransport(app)) as client:
            partner = AppRef(*PARTNER)
            body = {"datasetId": dataset_id, "name": "Partner",
                    "datasources": [{"name": "p", "connectionId": "c", "connectorType": "MSSQL_LIVE",
                                     "tableName": "t"}],
                    "columns": [{"columnName": "Total", "columnType": "NUMBER"}]}
            await client.create_dataset(partner, body)
            await client.set_shared(partner, dataset_id, True)
    asyncio.run(seed())
    app.state.emulator.save()


def with_env_secrets(project, monkeypatch) -> None:
    monkeypatch.setenv("QI_SOURCE_ID", SOURCE_ID)
    monkeypatch.setenv("QI_DB_PASSWORD", PASSWORD)
    project.manifest("partner.yaml").write_text(PARTNER_VIEW)
    project.replace_in("sales.yaml", "    team: revenue-analytics\n",
                       "    team: revenue-analytics\n    warehousePassword: ${env:QI_DB_PASSWORD}\n")


def files_holding(root: Path, *values: str) -> list[str]:
    """Every file under ``root`` (state, .wal, backup, lock, plan files...) that holds a value,
    as text or as bytes; the emulator's world is Qrvey's side and is left out."""
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.endswith(".emulator.json"):
            continue
        data = path.read_bytes()
        if any(value.encode() in data for value in values):
            found.append(str(path.relative_to(root)))
    return found


def test_env_values_are_in_no_file_written_and_in_no_output(project, monkeypatch, caplog):
    with_env_secrets(project, monkeypatch)
    seed_partner_source(project)
    caplog.clear()                 # the seeding's own lines: it knows no secret
    caplog.set_level(logging.DEBUG)
    outputs = []

    def run(*args):
        result = project.run(*args)
        outputs.append(result.output)
        assert result.exit_code == 0, result.output
        return result

    run("validate")
    run("plan", "--out", "p.json")
    run("apply", "p.json")
    view = project.world()["datasets"][project.dataset_id("view.partner-orders")]
    assert view["sourceDataset"]["datasetId"] == SOURCE_ID           # the real id was used
    orders = project.world()["datasets"][project.dataset_id("dataset.orders")]
    assert orders["customAttributes"]["warehousePassword"] == PASSWORD
    shown = run("state", "show", "view.partner-orders").stdout
    assert json.loads(shown)["source"]["appId"] == "a-partner"
    run("state", "show", "dataset.orders")
    run("state", "list")
    assert "No changes" in run("plan").stdout                          # the concealed source still matches
    run("plan", "--out", "again.json")
    run("drift")
    project.replace_in("sales.yaml", "name: Orders\n", "name: Orders 2\n")
    run("apply", "--auto-approve")                                      # a second write: the backup
    assert (project.root / "state" / "local.json.backup").exists()
    run("plan", "--format", "json")
    run("plan", "--format", "markdown")

    assert files_holding(project.root, SOURCE_ID, PASSWORD) == []
    for output in outputs:
        assert SOURCE_ID not in output and PASSWORD not in output
    assert SOURCE_ID not in caplog.text and PASSWORD not in caplog.text


def test_validate_needs_no_api_key_for_a_manifest_with_env_values(project, monkeypatch):
    with_env_secrets(project, monkeypatch)
    monkeypatch.delenv("QRVEY_API_KEY", raising=False)
    result = project.run("validate", "--env", "prod")
    assert result.exit_code == 0, result.output


def test_a_changed_env_source_id_is_still_seen(project, monkeypatch):
    with_env_secrets(project, monkeypatch)
    seed_partner_source(project)
    assert project.run("apply", "--auto-approve").exit_code == 0
    recorded = project.state()["resources"]["view.partner-orders"]["source"]["datasetId"]
    assert recorded.startswith("(sensitive:") and SOURCE_ID not in recorded
    seed_partner_source(project, "another-partner-id")
    monkeypatch.setenv("QI_SOURCE_ID", "another-partner-id")
    result = project.run("plan")
    assert "view.partner-orders must be replaced" in result.stdout
    assert "source changed to (sensitive)" in result.stdout


def test_a_changed_env_value_changes_the_applied_hash(project, monkeypatch):
    with_env_secrets(project, monkeypatch)
    seed_partner_source(project)
    assert project.run("apply", "--auto-approve").exit_code == 0
    before = project.state()["resources"]["dataset.orders"]["applied_hash"]
    monkeypatch.setenv("QI_DB_PASSWORD", "hunter3-Xk9")
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "1 updated" in result.stdout
    assert project.state()["resources"]["dataset.orders"]["applied_hash"] != before


def test_debug_output_of_a_real_process_holds_no_env_value(project, monkeypatch):
    """--debug, as a user runs it: the HTTP debug lines (ours and httpx's) and a traceback."""
    with_env_secrets(project, monkeypatch)
    seed_partner_source(project)
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "qrvey_iac", *args, "--debug"], cwd=project.root, env=env,
                              capture_output=True, text=True, timeout=120)

    first = cli("apply", "--auto-approve")
    assert first.returncode == 0, first.stderr
    assert "qrvey_iac.http DEBUG GET" in first.stderr     # the debug lines are there...
    assert "/dataset/***" in first.stderr                 # ...with the source id redacted from its path
    second = cli("plan")
    assert second.returncode == 0, second.stderr
    # a failure with a traceback: the source is gone from Qrvey, so the view is blocked (its
    # reason names the secret id, masked) and apply refuses the plan
    monkeypatch.setenv("QI_SOURCE_ID", SOURCE_ID + "-gone")
    env["QI_SOURCE_ID"] = SOURCE_ID + "-gone"
    failed = cli("apply", "--auto-approve")
    assert failed.returncode == 1
    assert "Traceback" in failed.stderr
    assert "view.partner-orders cannot be planned (its source dataset (sensitive)" in failed.stdout
    for result in (first, second, failed):
        for value in (SOURCE_ID, PASSWORD):
            assert value not in result.stdout and value not in result.stderr
    assert files_holding(project.root, SOURCE_ID, PASSWORD) == []


# -- stored hashes cannot be reversed offline ------------------------------------------------


def candidates(secret: str) -> list[str]:
    """What an attacker with the files and the manifests would try (the right value among them)."""
    return [secret[:-1] + c for c in "0123456789abcdefXYZ"] + [secret]


def test_stored_hashes_cannot_be_recomputed_from_the_files(project, monkeypatch):
    """Everything in the state and the plan file, with the manifests (in git) and a guess of
    the secret, must not reproduce any stored digest: the digests are keyed with a key no
    file holds. On the code before, the applied hash was a plain SHA-256 of the document,
    the plan's seal a SHA-256 salted with a salt stored beside it, and the source pin a
    SHA-256 of the source id."""
    with_env_secrets(project, monkeypatch)
    seed_partner_source(project)
    assert project.run("apply", "--auto-approve").exit_code == 0
    project.replace_in("sales.yaml", "name: Orders\n", "name: Orders 2\n")
    assert project.run("plan", "--out", "p.json").exit_code == 0
    state = project.state()
    plan = json.loads((project.root / "p.json").read_text())
    stored = {r["applied_hash"] for r in state["resources"].values()} | set(plan["seals"].values())
    stored |= {key.split(":", 1)[1] for key in plan["fingerprints"] if key.startswith("source:")}
    assert plan["seals"] and any(key.startswith("source:") for key in plan["fingerprints"])

    dataset = KINDS["Dataset"]
    orders = state["resources"]["dataset.orders"]
    nonce = plan.get("seal_nonce", "")
    for guess in candidates(PASSWORD):
        document = json.loads(json.dumps(_orders_document(project, "Orders")).replace(PASSWORD, guess))
        assert dataset.applied_hash(document) != orders["applied_hash"]
        renamed = {**document, "name": "Orders 2"}
        text = json.dumps(renamed, sort_keys=True, separators=(",", ":"))
        assert hashlib.sha256(f"{nonce}\0{text}".encode()).hexdigest() not in stored
    for guess in candidates(SOURCE_ID):
        assert canonical_hash(guess)[:20] not in stored


def _orders_document(project, name: str) -> dict:
    from qrvey_iac.wiring import Workspace

    manifest = Workspace.open(str(project.root / "qrvey-iac.yaml"), None, {}).manifest()
    document = manifest.resources["dataset.orders"].desired
    return {**document, "name": name}


def test_the_debug_handler_masks_any_library_line_holding_a_secret():
    """A backstop under the client's own redaction: whatever logger a line comes from."""
    from qrvey_iac.cli_support import KNOWN_SECRETS, MaskingFilter

    KNOWN_SECRETS.add(PASSWORD)
    try:
        record = logging.LogRecord("httpcore.http11", logging.DEBUG, __file__, 1,
                                   "receive_response_headers.complete return_value=%r", (("location", PASSWORD),), None)
        assert MaskingFilter().filter(record)
        assert PASSWORD not in record.getMessage() and "(sensitive)" in record.getMessage()
    finally:
        KNOWN_SECRETS.discard(PASSWORD)
