import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from postgres_server import new_workspace, shared_database

from qrvey_iac.adapters.state.local import LocalStateStore
from qrvey_iac.adapters.state.lock import LocalLocker
from qrvey_iac.adapters.state.postgres import PostgresDatabase, PostgresLocker, PostgresStateStore
from qrvey_iac.cli import cli
from qrvey_iac.emulator import EmulatorConfig, parse_faults
from qrvey_iac.emulator.testing import running_server

DSN_VARIABLE = "QRVEY_IAC_TEST_STATE_DSN"
BACKENDS = ["local", "postgres"]
SERVED_KEY = "k3y-SECRET-5f2a9c"


class Project:
    """A copy of the example project in a temp folder, driven through the CLI; its state in
    the local file (``backend`` "local") or in a workspace of the test PostgreSQL server."""

    def __init__(self, root: Path, backend: str = "local") -> None:
        self.root = root
        self.runner = CliRunner()
        self.backend = backend
        self.workspace = new_workspace() if backend == "postgres" else None
        self.dsn = shared_database("cli") if backend == "postgres" else None
        self._store = None

    def use_postgres(self, monkeypatch) -> None:
        """Point the environment ``local`` of the config at this project's postgres workspace."""
        config = self.root / "qrvey-iac.yaml"
        text = config.read_text()
        block = f"    state: {{backend: postgres, dsnEnv: {DSN_VARIABLE}, workspace: {self.workspace}}}\n"
        assert "  local:\n    endpoint: local\n" in text
        config.write_text(text.replace("  local:\n    endpoint: local\n", "  local:\n    endpoint: local\n" + block, 1))
        monkeypatch.setenv(DSN_VARIABLE, self.dsn)

    def store(self):
        """The store holding this project's state (one object: it keeps a connection)."""
        if self._store is None:
            if self.backend == "postgres":
                self._store = PostgresStateStore(self._database(), self.workspace)
            else:
                self._store = LocalStateStore(self.state_path)
        return self._store

    def locker(self):
        if self.backend == "postgres":
            return PostgresLocker(self._database(), self.workspace)
        return LocalLocker(self.state_path)

    def state_exists(self) -> bool:
        return self.store().exists()

    def _database(self) -> PostgresDatabase:
        dsn = self.dsn
        return PostgresDatabase(lambda: dsn, f"test workspace {self.workspace}")

    def close(self) -> None:
        if self._store is not None and hasattr(self._store, "close"):
            self._store.close()

    def run(self, *args: str, input: str | None = None):
        return self.runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    @property
    def state_path(self) -> Path:
        return self.root / "state" / "local.json"

    @property
    def world_path(self) -> Path:
        return self.root / "state" / "local.emulator.json"

    def state(self) -> dict:
        """The state as the store reads it (the file with its write-ahead sidecar; the rows), as JSON."""
        return self.store().read().model_dump(mode="json")

    def world(self) -> dict:
        return json.loads(self.world_path.read_text())

    def edit_world(self, edit) -> None:
        world = self.world()
        edit(world)
        self.world_path.write_text(json.dumps(world))

    def dataset_id(self, address: str) -> str:
        return self.state()["resources"][address]["datasetId"]

    def manifest(self, name: str) -> Path:
        return self.root / "manifests" / name

    def replace_in(self, name: str, old: str, new: str) -> None:
        path = self.manifest(name)
        text = path.read_text()
        assert old in text, f"{old!r} not in {name}"
        path.write_text(text.replace(old, new, 1))


@pytest.fixture
def project(example_dir) -> Project:
    return Project(example_dir)


@pytest.fixture
def postgres_project(example_dir, monkeypatch, postgres):
    """``project`` with its state in a new workspace of the test PostgreSQL server."""
    project = Project(example_dir, "postgres")
    project.use_postgres(monkeypatch)
    yield project
    project.close()


@pytest.fixture(params=BACKENDS)
def any_backend_project(request, example_dir, monkeypatch):
    """``project`` once with each state backend (a test module uses it as its ``project``)."""
    project = Project(example_dir, request.param)
    if request.param == "postgres":
        project.use_postgres(monkeypatch)
    yield project
    project.close()


@pytest.fixture
def served(project, monkeypatch):
    """``served(faults, **config_fields)``: the example project's local environment pointed at a
    served emulator (over real HTTP) injecting ``faults``; the running server is returned."""
    servers = []
    monkeypatch.setenv("QRVEY_API_KEY", SERVED_KEY)

    def start(spec: str = "", **config_fields):
        server = running_server(EmulatorConfig(api_key=SERVED_KEY, faults=parse_faults(spec)))
        servers.append(server)
        running = server.__enter__()
        config = project.root / "qrvey-iac.yaml"
        text = config.read_text().replace("    endpoint: local\n",
                                          f"    endpoint: {running.base_url}\n    apiKeyEnv: QRVEY_API_KEY\n", 1)
        for name, value in config_fields.items():
            text = text.replace("    apiKeyEnv: QRVEY_API_KEY\n", f"    apiKeyEnv: QRVEY_API_KEY\n    {name}: {value}\n", 1)
        config.write_text(text)
        return running

    yield start
    for server in servers:
        server.__exit__(None, None, None)
