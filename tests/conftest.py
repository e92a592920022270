import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def example_dir(tmp_path, monkeypatch) -> Path:
    """A copy of the example project (config + manifests) as the working directory."""
    shutil.copy(REPO / "qrvey-iac.yaml", tmp_path / "qrvey-iac.yaml")
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    monkeypatch.chdir(tmp_path)
    return tmp_path
