"""A throwaway PostgreSQL server for the tests: one per test session, started on first use.

``shared_server()`` finds the server programs (``pg_config --bindir``), runs ``initdb`` into a
new temporary folder and ``pg_ctl start`` on a free loopback port (its unix socket in that
folder too), and returns the running server; ``stop_shared()`` (called by tests/conftest.py
when the session ends) stops it and removes the folder. TCP connections need the password
(``PASSWORD``, distinctive so a test can assert it never appears in a message); fsync is off:
nothing here has to survive a power cut.

Without the programs the tests that need the server are skipped with the reason; under
``CI=true`` they fail instead, so CI never passes by skipping them. PostgreSQL refuses to run
as root: as root the programs run as the user ``nobody``, owning the temporary folder.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

import pytest

PASSWORD = "pg-Test-Passw0rd-7f3c19"
USER = "postgres"
UNPRIVILEGED = "nobody"


class PostgresServer:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="qrvey-iac-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self._run_as = _unprivileged_user() if os.geteuid() == 0 else None

    def start(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if self._run_as is not None:
            os.chown(self.root, self._run_as.pw_uid, self._run_as.pw_gid)
            os.chown(pwfile, self._run_as.pw_uid, self._run_as.pw_gid)
        self._program("initdb", "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}", "-E", "UTF8",
                      "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "--no-instructions")
        self.port = _free_port()
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._program("pg_ctl", "start", "-D", str(self.data), "-l", str(self.root / "server.log"),
                      "-o", options, "-w", "-t", "60")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._program("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, database: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its DSN."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def log(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def _program(self, name: str, *args: str) -> None:
        kwargs = {}
        if self._run_as is not None:
            kwargs = {"user": self._run_as.pw_uid, "group": self._run_as.pw_gid}
        done = subprocess.run([str(self.bindir / name), *args], capture_output=True, text=True,
                              cwd=self.root, **kwargs)
        if done.returncode != 0:
            raise RuntimeError(f"{name} failed ({done.returncode}): {done.stdout}{done.stderr}{self.log()}")


def _unprivileged_user() -> pwd.struct_passwd:
    return pwd.getpwnam(UNPRIVILEGED)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def find_bindir() -> tuple[Path | None, str]:
    """The folder of the server programs, or None and why not."""
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None, "no PostgreSQL server programs: pg_config is not on PATH"
    try:
        bindir = Path(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                     check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError) as exc:
        return None, f"no PostgreSQL server programs: `pg_config --bindir` failed ({exc})"
    missing = [p for p in ("initdb", "pg_ctl", "postgres") if not (bindir / p).exists()]
    if missing:
        return None, f"no PostgreSQL server programs: {', '.join(missing)} not in {bindir} (pg_config --bindir)"
    return bindir, ""


_shared: PostgresServer | None = None
_failure: str | None = None


def unavailable(reason: str):
    """Skip with ``reason``; under CI=true, fail: CI must run these tests."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def shared_server() -> PostgresServer:
    """The session's server, started on the first call. Under a lock: the chaos lanes run in
    threads and ask for it at once; each started a server of its own, and only the one kept
    here was stopped at the session's end (three postgres processes left per chaos run)."""
    with _starting:
        return _shared_server()


def _shared_server() -> PostgresServer:
    global _shared, _failure
    if _shared is None and _failure is None:
        bindir, why = find_bindir()
        if bindir is None:
            _failure = why
        else:
            server = PostgresServer(bindir)
            try:
                server.start()
            except (OSError, RuntimeError, KeyError) as exc:
                server.stop()
                _failure = f"the PostgreSQL test server did not start: {exc}"
            else:
                _shared = server
    if _shared is None:
        unavailable(_failure)
    return _shared


def stop_shared() -> None:
    global _shared
    _databases.clear()
    if _shared is not None:
        _shared.stop()
        _shared = None


_databases: dict[str, str] = {}
_starting = threading.RLock()      # shared_server and shared_database, from the chaos lanes' threads


def shared_database(purpose: str) -> str:
    """The DSN of a database of the session's server kept for ``purpose`` (made on first use):
    tests that each take a workspace of their own share it."""
    server = shared_server()
    with _starting:
        if purpose not in _databases:
            _databases[purpose] = server.create_database()
        return _databases[purpose]


def new_workspace() -> str:
    return "ws-" + uuid.uuid4().hex[:12]
