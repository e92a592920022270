import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from qrvey_iac.adapters.state.local import LocalStateStore
from qrvey_iac.cli import cli



class Project:
    """A copy of the example project in a temp folder, driven through the CLI."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runner = CliRunner()

    def run(self, *args: str, input: str | None = None):
        return self.runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    @property
    def state_path(self) -> Path:
        return self.root / "state" / "local.json"

    @property
    def world_path(self) -> Path:
        return self.root / "state" / "local.emulator.json"

    def state(self) -> dict:
        """The state as the store reads it (the file with its write-ahead sidecar), as JSON."""
        return LocalStateStore(self.state_path).read().model_dump(mode="json")

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
