import shutil
from pathlib import Path

import postgres_server
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


@pytest.fixture(scope="session")
def postgres():
    """The session's throwaway PostgreSQL server (tests/postgres_server.py): skipped with the
    reason where no server programs are found, failed instead under CI=true."""
    return postgres_server.shared_server()


def pytest_sessionfinish(session):
    postgres_server.stop_shared()
