"""The PostgreSQL state store and locker: one database, many workspaces, many machines.

A workspace is one environment's state (``state: {backend: postgres, workspace: NAME}``). Its
tables (created on first use, migrated by ``SCHEMA_VERSION``; docs/architecture.md §4):

- ``qrvey_iac_workspaces``: one row per workspace: lineage, serial, format version, owner, and
  a ``revision`` that every write changes;
- ``qrvey_iac_resources``: one row per resource, keyed by (workspace, address), its record as
  JSON in the state format;
- ``qrvey_iac_journal``: the journal's entries, one row each, ordered by ``position``;
- ``qrvey_iac_lock_holders``: who holds a workspace's lock (shown to whoever waits);
- ``qrvey_iac_schema``: the schema version.

A write is one transaction: the workspace row is locked (``SELECT ... FOR UPDATE``), its serial
and lineage checked against what the writer read (else StateConflictError, nothing written),
then only the rows that differ from what this store object last read or wrote are written.
The engine's group commit hands over the whole State; the row delta is computed here. When the
store does not know what is stored (another writer wrote since: the revision moved; a first
write; an older format), the write replaces the workspace's rows whole.

The lock is a session-level advisory lock (``pg_try_advisory_lock``) on a key derived from
the workspace, held on a connection of its own for the whole command: when the holder dies or
its connection drops, PostgreSQL releases it, so no lock is ever broken by hand after a crash.
Different workspaces have different keys and never wait for each other.

The DSN is read from its environment variable when first needed, and neither it nor its
password appears in any message: every error of psycopg is re-raised as a StateError with
both removed from its text.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from qrvey_iac.adapters.state.codec import decode
from qrvey_iac.adapters.state.lock import holder_info, who
from qrvey_iac.core.errors import StateConflictError, StateError, StateLockedError, StateWriteError
from qrvey_iac.core.state import STATE_VERSION, JournalEntry, ResourceState, State

POLL_SECONDS = 0.2
CONNECT_TIMEOUT = 10              # seconds, unless the DSN says otherwise
TERMINATE_WAIT = 10.0             # seconds `unlock --force` waits for a terminated holder to let go
LOCK = "postgres"                 # the holder's ``lock`` field: a PostgreSQL session holds the lock
MIGRATION_LOCK = 0x71726579_69616300   # "qreyiac\0": one migration at a time per database

SCHEMA_VERSION = 1
# MIGRATIONS[n]: the statements that take the schema from version n - 1 to n, in order.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE qrvey_iac_workspaces (
               workspace text PRIMARY KEY,
               lineage text NOT NULL,
               serial bigint NOT NULL,
               version integer NOT NULL,
               owner jsonb,
               revision text NOT NULL,
               updated timestamptz NOT NULL DEFAULT now())""",
        """CREATE TABLE qrvey_iac_resources (
               workspace text NOT NULL REFERENCES qrvey_iac_workspaces ON DELETE CASCADE,
               address text NOT NULL,
               body jsonb NOT NULL,
               PRIMARY KEY (workspace, address))""",
        """CREATE TABLE qrvey_iac_journal (
               workspace text NOT NULL REFERENCES qrvey_iac_workspaces ON DELETE CASCADE,
               position bigint NOT NULL,
               entry jsonb NOT NULL,
               PRIMARY KEY (workspace, position))""",
        """CREATE TABLE qrvey_iac_lock_holders (
               workspace text PRIMARY KEY,
               holder jsonb NOT NULL,
               backend_pid integer NOT NULL,
               acquired timestamptz NOT NULL DEFAULT now())""",
    ),
}


class PostgresDatabase:
    """Connections to the database named by a DSN, which ``dsn()`` reads when first needed.

    ``where`` names the state in messages (it never holds the DSN); ``secrets`` receives the
    DSN and its password once read, so the CLI masks them too.
    """

    def __init__(self, dsn: Callable[[], str], where: str, secrets: set[str] | None = None) -> None:
        self._dsn_source = dsn
        self.where = where
        self._secrets = secrets if secrets is not None else set()
        self._dsn: str | None = None
        self._hidden: list[str] = []
        self._schema_ready = False
        self._mutex = threading.Lock()

    def connect(self) -> psycopg.Connection:
        """A new autocommit connection, the schema created or migrated first when needed."""
        dsn = self._read_dsn()
        with self.errors("cannot connect to PostgreSQL"):
            params = conninfo_to_dict(dsn)
            extra: dict[str, Any] = {}
            if "connect_timeout" not in params:
                extra["connect_timeout"] = CONNECT_TIMEOUT
            if "application_name" not in params:
                extra["application_name"] = "qrvey-iac"
            conn = psycopg.connect(dsn, autocommit=True, **extra)
        try:
            with self._mutex:
                if not self._schema_ready:
                    with self.errors("cannot create or migrate the state tables"):
                        ensure_schema(conn, self.where)
                    self._schema_ready = True
        except BaseException:
            conn.close()
            raise
        return conn

    def _read_dsn(self) -> str:
        if self._dsn is None:
            dsn = self._dsn_source()
            try:
                password = conninfo_to_dict(dsn).get("password")
            except psycopg.Error:
                raise StateError(f"{self.where}: the DSN cannot be read as a PostgreSQL connection string or "
                                 "URI (its value is not shown); see "
                                 "https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING"
                                 ) from None
            hidden = [dsn, dsn.strip()]
            if password:
                hidden += [str(password), quote(str(password), safe=""), quote(str(password))]
            self._hidden = sorted({h for h in hidden if h}, key=len, reverse=True)
            self._secrets.update(self._hidden)
            self._dsn = dsn
        return self._dsn

    def redacted(self, text: str) -> str:
        for secret in self._hidden:
            text = text.replace(secret, "***")
        return text

    @contextmanager
    def errors(self, doing: str, error: type[StateError] = StateError) -> Iterator[None]:
        """A psycopg error inside is an ``error`` (a StateError) saying ``doing`` and why,
        without the DSN or its password."""
        try:
            yield
        except psycopg.Error as exc:
            reason = self.redacted(" ".join(str(exc).split())) or exc.__class__.__name__
            raise error(f"{self.where}: {doing} ({reason})") from None


def ensure_schema(conn: psycopg.Connection, where: str) -> None:
    """Create the tables, or migrate them to SCHEMA_VERSION; a newer schema is refused."""
    version = _schema_version(conn)
    if version == SCHEMA_VERSION:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS qrvey_iac_schema "
                     "(id integer PRIMARY KEY CHECK (id = 1), version integer NOT NULL)")
        version = _schema_version(conn) or 0       # again: another process may have migrated meanwhile
        if version > SCHEMA_VERSION:
            raise _newer_schema(where, version)
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[step]:
                conn.execute(statement)
        conn.execute("INSERT INTO qrvey_iac_schema (id, version) VALUES (1, %s) "
                     "ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version", (SCHEMA_VERSION,))


def _schema_version(conn: psycopg.Connection) -> int | None:
    if conn.execute("SELECT to_regclass('qrvey_iac_schema')").fetchone()[0] is None:
        return None
    row = conn.execute("SELECT version FROM qrvey_iac_schema WHERE id = 1").fetchone()
    return None if row is None else row[0]


def _newer_schema(where: str, version: int) -> StateError:
    return StateError(f"{where}: the database's qrvey-iac tables have schema version {version}; this qrvey-iac "
                      f"knows up to {SCHEMA_VERSION}: upgrade qrvey-iac (nothing was changed)")


class PostgresStateStore:
    """The state of ``workspace`` in ``database`` (see the module docstring)."""

    def __init__(self, database: PostgresDatabase, workspace: str) -> None:
        self.database = database
        self.workspace = workspace
        self._conn: psycopg.Connection | None = None
        self._mutex = threading.Lock()      # one statement sequence at a time on the connection
        # What this store last read or wrote (None: nothing known: the next write is whole): the
        # state, the workspace row's revision then, and the journal rows' positions (in order).
        self._last: State | None = None
        self._revision: str | None = None
        self._positions: list[int] = []

    @property
    def where(self) -> str:
        return self.database.where

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = self.database.connect()
        return self._conn

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def exists(self) -> bool:
        with self._mutex, self.database.errors("cannot read the state"):
            return self._connection().execute(
                "SELECT 1 FROM qrvey_iac_workspaces WHERE workspace = %s", (self.workspace,)).fetchone() is not None

    def read(self) -> State:
        with self._mutex:
            with self.database.errors("cannot read the state"):
                conn = self._connection()
                with conn.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")   # one snapshot
                    row = conn.execute("SELECT version, lineage, serial, owner, revision FROM qrvey_iac_workspaces "
                                       "WHERE workspace = %s", (self.workspace,)).fetchone()
                    if row is None:
                        self._forget()
                        return State()
                    resources = conn.execute("SELECT address, body FROM qrvey_iac_resources WHERE workspace = %s",
                                             (self.workspace,)).fetchall()
                    journal = conn.execute("SELECT position, entry FROM qrvey_iac_journal WHERE workspace = %s "
                                           "ORDER BY position", (self.workspace,)).fetchall()
            version, lineage, serial, owner, revision = row
            raw = {"version": version, "lineage": lineage, "serial": serial, "owner": owner,
                   "resources": dict(resources), "journal": [entry for _, entry in journal]}
            try:
                state = decode(raw, self.where)
            except StateError:
                self._forget()
                raise
            if version == STATE_VERSION:
                self._last, self._revision, self._positions = state, revision, [p for p, _ in journal]
            else:
                self._forget()              # rows of an older format: the next write rewrites them
            return state

    def write(self, state: State, expected_serial: int) -> None:
        """Store ``state`` when the workspace still has ``expected_serial`` (0: none) and its
        lineage: one transaction, the workspace row locked while its serial is checked."""
        with self._mutex:
            revision = uuid.uuid4().hex
            with self.database.errors("cannot write the state; the state stored before this write is whole "
                                      "and unchanged", StateWriteError):
                conn = self._connection()
                with conn.transaction():
                    positions = self._write(conn, state, expected_serial, revision)
            self._last, self._revision, self._positions = state, revision, positions

    def compact(self) -> None:
        """Nothing is kept apart from the rows: nothing to fold in."""

    def _forget(self) -> None:
        self._last, self._revision, self._positions = None, None, []

    def _write(self, conn: psycopg.Connection, state: State, expected: int, revision: str) -> list[int]:
        row = conn.execute("SELECT serial, lineage, revision, version FROM qrvey_iac_workspaces "
                           "WHERE workspace = %s FOR UPDATE", (self.workspace,)).fetchone()
        owner = Jsonb(state.owner.model_dump(mode="json")) if state.owner is not None else None
        if row is None:
            if expected != 0:
                raise self._conflict(expected, None)
            created = conn.execute(
                "INSERT INTO qrvey_iac_workspaces (workspace, lineage, serial, version, owner, revision) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (workspace) DO NOTHING",
                (self.workspace, state.lineage, state.serial, state.version, owner, revision))
            if created.rowcount == 0:          # another writer created it since our check
                stored = conn.execute("SELECT serial FROM qrvey_iac_workspaces WHERE workspace = %s",
                                      (self.workspace,)).fetchone()
                raise self._conflict(expected, stored[0] if stored else None)
            return self._write_whole(conn, state, existed=False)
        serial, lineage, stored_revision, version = row
        if (serial, lineage) != (expected, state.lineage):
            raise self._conflict(expected, serial, other_lineage=lineage != state.lineage)
        conn.execute("UPDATE qrvey_iac_workspaces SET serial = %s, version = %s, owner = %s, revision = %s, "
                     "updated = now() WHERE workspace = %s",
                     (state.serial, state.version, owner, revision, self.workspace))
        last = self._last
        if (last is None or stored_revision != self._revision or version != state.version
                or last.lineage != state.lineage):
            return self._write_whole(conn, state, existed=True)
        self._write_resources(conn, last, state)
        return self._write_journal(conn, state.journal)

    def _write_whole(self, conn: psycopg.Connection, state: State, existed: bool) -> list[int]:
        if existed:
            conn.execute("DELETE FROM qrvey_iac_resources WHERE workspace = %s", (self.workspace,))
            conn.execute("DELETE FROM qrvey_iac_journal WHERE workspace = %s", (self.workspace,))
        with conn.cursor() as cursor:
            with cursor.copy("COPY qrvey_iac_resources (workspace, address, body) FROM STDIN") as copy:
                for address, resource in state.resources.items():
                    copy.write_row((self.workspace, address, _json(resource)))
        positions = list(range(1, len(state.journal) + 1))
        self._insert_journal(conn, zip(positions, state.journal))
        return positions

    def _write_resources(self, conn: psycopg.Connection, last: State, state: State) -> None:
        changed = [(self.workspace, address, _json(resource)) for address, resource in state.resources.items()
                   if (old := last.resources.get(address)) is not resource and old != resource]
        removed = [address for address in last.resources if address not in state.resources]
        with conn.cursor() as cursor:
            if removed:
                cursor.execute("DELETE FROM qrvey_iac_resources WHERE workspace = %s AND address = ANY(%s)",
                               (self.workspace, removed))
            if changed:
                cursor.executemany("INSERT INTO qrvey_iac_resources (workspace, address, body) VALUES (%s, %s, %s) "
                                   "ON CONFLICT (workspace, address) DO UPDATE SET body = EXCLUDED.body", changed)

    def _write_journal(self, conn: psycopg.Connection, journal: tuple[JournalEntry, ...]) -> list[int]:
        """The journal's rows made to hold ``journal``: the entries still there keep their rows
        (in the order they had), the new ones are appended after them, the others deleted.
        An entry that matches an old one only after a new one was appended is written again:
        the positions stay in the journal's order."""
        assert self._last is not None
        old = list(zip(self._positions, self._last.journal))
        next_position = (self._positions[-1] + 1) if self._positions else 1
        positions: list[int] = []
        added: list[tuple[int, JournalEntry]] = []
        search = 0
        for entry in journal:
            found = None
            if not added:
                found = next((i for i in range(search, len(old)) if old[i][1] == entry), None)
            if found is not None:
                positions.append(old[found][0])
                search = found + 1
            else:
                added.append((next_position, entry))
                positions.append(next_position)
                next_position += 1
        kept = set(positions)
        gone = [position for position, _ in old if position not in kept]
        if gone:
            conn.execute("DELETE FROM qrvey_iac_journal WHERE workspace = %s AND position = ANY(%s)",
                         (self.workspace, gone))
        self._insert_journal(conn, added)
        return positions

    def _insert_journal(self, conn: psycopg.Connection, rows) -> None:
        values = [(self.workspace, position, _json(entry)) for position, entry in rows]
        if values:
            with conn.cursor() as cursor:
                cursor.executemany("INSERT INTO qrvey_iac_journal (workspace, position, entry) VALUES (%s, %s, %s)",
                                   values)

    def _conflict(self, expected: int, stored: int | None, other_lineage: bool = False) -> StateConflictError:
        if stored is None:
            now = "it is gone"
        elif other_lineage:
            now = f"it now holds another state (another lineage, serial {stored})"
        else:
            now = f"its serial is now {stored}"
        return StateConflictError(
            f"{self.where} was changed by another writer since this command read it (serial {expected}; {now}); "
            "nothing was overwritten. Is another qrvey-iac running on this state without its lock? Run plan to "
            "see where things stand.", expected, stored)


def _json(value: ResourceState | JournalEntry) -> Jsonb:
    return Jsonb(value.model_dump(mode="json"))


def lock_key(workspace: str) -> int:
    """The advisory lock key of ``workspace``: 64 bits of a hash of its name (signed, as
    PostgreSQL's bigint). Two names that collided would only take turns."""
    digest = hashlib.sha256(f"qrvey-iac state workspace {workspace}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresLocker:
    """Locks ``workspace`` with a session advisory lock held on a connection of its own."""

    def __init__(self, database: PostgresDatabase, workspace: str) -> None:
        self.database = database
        self.workspace = workspace
        self.key = lock_key(workspace)
        self._conn: psycopg.Connection | None = None    # for holder() and unlock(), never holds the lock
        self._mutex = threading.Lock()

    @property
    def where(self) -> str:
        return self.database.where

    @contextmanager
    def lock(self, command: str, timeout: float = 0.0) -> Iterator[str]:
        holder = {**holder_info(command), "lock": LOCK}
        deadline = time.monotonic() + timeout
        conn = self.database.connect()
        quick_retries = 3
        try:
            with self.database.errors("cannot take the state lock"):
                while not conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0]:
                    if time.monotonic() >= deadline:
                        if quick_retries and self.holder() is None:
                            quick_retries -= 1      # released since the attempt: try again at once
                            continue
                        raise StateLockedError(self._held_message(timeout))
                    time.sleep(POLL_SECONDS)
                holder["backend_pid"] = conn.info.backend_pid
                conn.execute("INSERT INTO qrvey_iac_lock_holders (workspace, holder, backend_pid) VALUES (%s, %s, %s) "
                             "ON CONFLICT (workspace) DO UPDATE SET holder = EXCLUDED.holder, "
                             "backend_pid = EXCLUDED.backend_pid, acquired = now()",
                             (self.workspace, Jsonb(holder), holder["backend_pid"]))
            yield holder["id"]
        finally:
            self._release(conn, holder["id"])

    def _release(self, conn: psycopg.Connection, lock_id: str) -> None:
        """Remove our holder row, release the lock (at once: a session that closes lets its
        locks go a moment later, and the next command must find it free), close the connection.
        A connection already gone (the server restarted, `unlock --force`) released it already."""
        try:
            conn.execute("DELETE FROM qrvey_iac_lock_holders WHERE workspace = %s AND holder->>'id' = %s",
                         (self.workspace, lock_id))
            conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        except psycopg.Error:
            pass
        finally:
            conn.close()

    def holder(self) -> dict | None:
        """Who holds the lock (None: free). A holder row whose session no longer holds the
        lock is a holder that is gone: PostgreSQL released its lock."""
        with self._mutex, self.database.errors("cannot read who holds the state lock"):
            conn = self._query_connection()
            backend = self._holding_backend(conn)
            if backend is None:
                return None
            row = conn.execute("SELECT holder, backend_pid FROM qrvey_iac_lock_holders WHERE workspace = %s",
                               (self.workspace,)).fetchone()
        if row is not None and row[1] == backend:
            return row[0]
        # held, its holder row not written yet (or written by a session since gone)
        return {"id": "?", "command": "another command", "host": "?", "pid": "?", "started": "?",
                "backend_pid": backend, "lock": LOCK}

    def is_locked(self) -> bool:
        return self.holder() is not None

    def unlock(self, lock_id: str, force: bool = False) -> dict:
        """A lock's holder is always alive (a gone one's lock is released by PostgreSQL), so
        this is refused unless ``force``, which ends the holder's database session
        (``pg_terminate_backend``): its lock goes with it. The holder's process keeps running;
        the store's serial check refuses whichever of its writes conflicts."""
        holder = self.holder()
        if holder is None:
            raise StateError(f"{self.where} is not locked")
        if holder.get("id") != lock_id:
            raise StateError(f"lock id {lock_id} does not match the lock held: {holder.get('id')}")
        if not force:
            raise StateError(
                f"lock {lock_id} is held by a running process ({who(holder)}): PostgreSQL holds it for that "
                "process's database session and releases it when the process ends or its connection drops, "
                "so it never needs breaking after a crash. Let it finish or stop it. "
                f"`qrvey-iac state unlock {lock_id} --force` ends its database session instead (the lock goes "
                "with it), letting another command write the state while that process may still try to")
        backend = holder["backend_pid"]
        with self._mutex, self.database.errors(f"cannot end the database session (pid {backend}) holding the lock"):
            conn = self._query_connection()
            if not conn.execute("SELECT pg_terminate_backend(%s)", (backend,)).fetchone()[0]:
                raise StateError(f"{self.where}: the database session holding lock {lock_id} (pid {backend}) "
                                 "could not be ended")
            deadline = time.monotonic() + TERMINATE_WAIT
            while self._holding_backend(conn) == backend:
                if time.monotonic() >= deadline:
                    raise StateError(f"{self.where}: the database session holding lock {lock_id} (pid {backend}) "
                                     f"was told to end but still holds the lock after {TERMINATE_WAIT:g}s")
                time.sleep(0.05)
            conn.execute("DELETE FROM qrvey_iac_lock_holders WHERE workspace = %s AND holder->>'id' = %s",
                         (self.workspace, lock_id))
        return holder

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _query_connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = self.database.connect()
        return self._conn

    def _holding_backend(self, conn: psycopg.Connection) -> int | None:
        """The pid of the server process whose session holds the lock, None when free."""
        high, low = (self.key >> 32) & 0xFFFFFFFF, self.key & 0xFFFFFFFF
        row = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = %s::bigint::oid AND objid = %s::bigint::oid", (high, low)).fetchone()
        return None if row is None else row[0]

    def _held_message(self, waited: float) -> str:
        advice = ("Wait for it to finish, or pass --lock-timeout to wait." if waited <= 0 else
                  f"It was still held after waiting {waited:g}s: wait for it to finish, or pass a longer "
                  "--lock-timeout.")
        try:
            holder = self.holder()
        except StateError:
            holder = None
        if holder is None:                  # released a moment ago
            return f"{self.where} was locked by another command. {advice}"
        text = f"{self.where} is locked by {holder.get('command', '?')} ({who(holder)}). {advice}"
        if holder.get("ci_run"):
            text += f" It runs in CI run {holder['ci_run']}."
        return text
