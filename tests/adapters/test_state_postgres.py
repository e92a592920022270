"""What only the PostgreSQL store and locker promise (the shared contract is in
test_state_contract.py): rows per resource and per journal entry, writes that touch only the
rows that changed, the schema created and migrated by version, lost updates refused between
connections, locks that free themselves, and a DSN whose password never shows.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time

import psycopg
import pytest
from postgres_server import PASSWORD

from qrvey_iac.adapters.state import postgres
from qrvey_iac.adapters.state.postgres import PostgresDatabase, PostgresLocker, PostgresStateStore, lock_key
from qrvey_iac.core.errors import StateConflictError, StateError, StateLockedError, StateWriteError
from qrvey_iac.core.state import JournalDetail, JournalEntry, ResourceState, State

LINEAGE = "L-pg"


@pytest.fixture
def dsn(postgres) -> str:
    """A new database of its own: these tests look at the tables."""
    return postgres.create_database()


def database(dsn: str) -> PostgresDatabase:
    return PostgresDatabase(lambda: dsn, "test state")


def resource(i: int, hash_: str = "h") -> ResourceState:
    return ResourceState(kind="Dataset", datasetId=f"id-{i}", appId="a", userId="u", applied_hash=f"{hash_}{i}")


def entry(n: int) -> JournalEntry:
    return JournalEntry(id=f"j{n}", op="create", address=f"dataset.j{n}", appId="a", userId="u",
                        detail=JournalDetail(kind="Dataset"))


def state(serial: int, resources: dict, journal=()) -> State:
    return State(lineage=LINEAGE, serial=serial, resources=resources, journal=tuple(journal))


def rows(dsn: str, sql: str, *params) -> list[tuple]:
    """The rows ``sql`` returns ([] for a statement that returns none)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def versions(dsn: str, workspace: str) -> dict[str, str]:
    """Each resource row's xmin: the transaction that last wrote it."""
    return dict(rows(dsn, "SELECT address, xmin::text FROM qrvey_iac_resources WHERE workspace = %s", workspace))


def journal_versions(dsn: str, workspace: str) -> dict[int, str]:
    return dict(rows(dsn, "SELECT position, xmin::text FROM qrvey_iac_journal WHERE workspace = %s", workspace))


def test_one_row_per_resource_and_per_journal_entry(dsn):
    store = PostgresStateStore(database(dsn), "ws")
    written = state(1, {f"dataset.d{i}": resource(i) for i in range(3)}, [entry(1), entry(2)])
    store.write(written, 0)
    assert rows(dsn, "SELECT address, body FROM qrvey_iac_resources WHERE workspace = 'ws' ORDER BY address") == [
        (f"dataset.d{i}", resource(i).model_dump(mode="json")) for i in range(3)]
    assert rows(dsn, "SELECT position, entry->>'id' FROM qrvey_iac_journal WHERE workspace = 'ws' ORDER BY position") \
        == [(1, "j1"), (2, "j2")]
    assert rows(dsn, "SELECT lineage, serial FROM qrvey_iac_workspaces WHERE workspace = 'ws'") == [(LINEAGE, 1)]
    assert PostgresStateStore(database(dsn), "ws").read() == written


def test_a_write_touches_only_the_rows_that_changed(dsn):
    store = PostgresStateStore(database(dsn), "ws")
    resources = {f"dataset.d{i}": resource(i) for i in range(5)}
    store.write(state(1, resources, [entry(1), entry(2)]), 0)
    before, journal_before = versions(dsn, "ws"), journal_versions(dsn, "ws")
    changed = {**resources, "dataset.d1": resource(1, "new"), "dataset.d9": resource(9)}
    del changed["dataset.d3"]
    store.write(state(2, changed, [entry(2), entry(3)]), 1)      # j1 settled, j3 started
    after, journal_after = versions(dsn, "ws"), journal_versions(dsn, "ws")
    assert set(after) == set(changed)
    assert [a for a in after if after[a] == before.get(a)] == ["dataset.d0", "dataset.d2", "dataset.d4"]
    assert journal_after[2] == journal_before[2] and set(journal_after) == {2, 3}
    assert PostgresStateStore(database(dsn), "ws").read() == state(2, changed, [entry(2), entry(3)])


def test_an_entry_put_back_before_a_kept_one_rewrites_in_order(dsn):
    store = PostgresStateStore(database(dsn), "ws")
    store.write(state(1, {}, [entry(1), entry(2)]), 0)
    store.write(state(2, {}, [entry(3), entry(2), entry(1)]), 1)
    assert PostgresStateStore(database(dsn), "ws").read().journal == (entry(3), entry(2), entry(1))


def test_a_write_after_another_writer_replaces_the_rows_whole(dsn):
    mine, theirs = PostgresStateStore(database(dsn), "ws"), PostgresStateStore(database(dsn), "ws")
    mine.write(state(1, {"dataset.a": resource(1)}), 0)
    theirs.read()
    theirs.write(state(2, {"dataset.a": resource(1), "dataset.b": resource(2)}), 1)   # mine does not know of it
    with pytest.raises(StateConflictError):
        mine.write(state(2, {"dataset.a": resource(1), "dataset.c": resource(3)}), 1)
    # expecting serial 2 without having read it: the rows are not the ones mine last wrote, so
    # a delta against those would leave dataset.b behind
    mine.write(state(3, {"dataset.a": resource(1), "dataset.c": resource(3)}), 2)
    assert theirs.read() == state(3, {"dataset.a": resource(1), "dataset.c": resource(3)})


def test_a_lost_update_between_two_connections_is_refused(dsn):
    first, second = PostgresStateStore(database(dsn), "ws"), PostgresStateStore(database(dsn), "ws")
    first.write(state(1, {"dataset.a": resource(1)}), 0)
    assert first.read().serial == second.read().serial == 1       # both read serial 1
    first.write(state(2, {"dataset.a": resource(1, "first")}), 1)
    with pytest.raises(StateConflictError) as caught:
        second.write(state(2, {"dataset.a": resource(1, "second")}), 1)
    assert (caught.value.expected_serial, caught.value.stored_serial) == (1, 2)
    assert "was changed by another writer" in str(caught.value)
    assert second.read() == state(2, {"dataset.a": resource(1, "first")})


def test_two_first_writes_of_one_workspace_one_wins(dsn):
    first, second = PostgresStateStore(database(dsn), "ws"), PostgresStateStore(database(dsn), "ws")
    first.write(state(1, {"dataset.a": resource(1)}), 0)
    with pytest.raises(StateConflictError):
        second.write(state(1, {"dataset.b": resource(2)}), 0)
    assert second.read() == state(1, {"dataset.a": resource(1)})


def test_workspaces_are_apart(dsn):
    one, two = PostgresStateStore(database(dsn), "one"), PostgresStateStore(database(dsn), "two")
    one.write(state(1, {"dataset.a": resource(1)}), 0)
    assert not two.exists() and two.read().resources == {}
    two.write(state(1, {"dataset.b": resource(2)}), 0)
    assert one.read().resources == {"dataset.a": resource(1)}


def test_the_schema_is_created_on_first_use_at_its_version(dsn):
    PostgresStateStore(database(dsn), "ws").exists()
    assert rows(dsn, "SELECT version FROM qrvey_iac_schema") == [(postgres.SCHEMA_VERSION,)]
    tables = {r[0] for r in rows(dsn, "SELECT tablename FROM pg_tables WHERE tablename LIKE 'qrvey_iac_%%'")}
    assert tables == {"qrvey_iac_schema", "qrvey_iac_workspaces", "qrvey_iac_resources", "qrvey_iac_journal",
                      "qrvey_iac_lock_holders"}


def test_an_older_schema_is_migrated_keeping_the_state(dsn, monkeypatch):
    PostgresStateStore(database(dsn), "ws").write(state(1, {"dataset.a": resource(1)}), 0)
    later = postgres.SCHEMA_VERSION + 1
    monkeypatch.setattr(postgres, "SCHEMA_VERSION", later)
    monkeypatch.setitem(postgres.MIGRATIONS, later, ("ALTER TABLE qrvey_iac_workspaces ADD COLUMN note text",))
    store = PostgresStateStore(database(dsn), "ws")
    assert store.read() == state(1, {"dataset.a": resource(1)})
    assert rows(dsn, "SELECT version FROM qrvey_iac_schema") == [(later,)]
    assert rows(dsn, "SELECT note FROM qrvey_iac_workspaces") == [(None,)]
    PostgresStateStore(database(dsn), "ws").exists()              # at its version: nothing runs again
    assert rows(dsn, "SELECT version FROM qrvey_iac_schema") == [(later,)]


def test_a_newer_schema_is_refused(dsn):
    PostgresStateStore(database(dsn), "ws").exists()
    rows(dsn, "UPDATE qrvey_iac_schema SET version = 99")
    with pytest.raises(StateError, match=r"schema version 99; this qrvey-iac knows up to \d+: upgrade qrvey-iac"):
        PostgresStateStore(database(dsn), "ws").read()


def test_rows_of_an_older_state_format_are_upgraded_and_rewritten(dsn):
    store = PostgresStateStore(database(dsn), "ws")
    store.write(state(1, {"dataset.a": resource(1)}), 0)
    rows(dsn, "UPDATE qrvey_iac_workspaces SET version = 4")
    rows(dsn, "UPDATE qrvey_iac_resources SET body = body - 'applied_fields'")
    again = PostgresStateStore(database(dsn), "ws")
    assert again.read() == state(1, {"dataset.a": resource(1)})
    again.write(state(2, {"dataset.a": resource(1)}), 1)
    assert rows(dsn, "SELECT version FROM qrvey_iac_workspaces") == [(5,)]
    assert rows(dsn, "SELECT body ? 'applied_fields' FROM qrvey_iac_resources") == [(True,)]


# --- the locker ----------------------------------------------------------------------------


def test_different_workspaces_never_wait_for_each_other(dsn):
    assert lock_key("one") != lock_key("two")
    one, two = PostgresLocker(database(dsn), "one"), PostgresLocker(database(dsn), "two")
    with one.lock("apply"):
        started = time.monotonic()
        with two.lock("apply", timeout=0) as lock_id:
            assert two.holder()["id"] == lock_id
        assert time.monotonic() - started < 1.0


def test_the_holder_row_names_the_session_and_goes_with_the_lock(dsn, monkeypatch):
    monkeypatch.setenv("GITHUB_RUN_ID", "77")
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/bi")
    locker = PostgresLocker(database(dsn), "ws")
    with locker.lock("apply") as lock_id:
        [(holder, backend)] = rows(dsn, "SELECT holder, backend_pid FROM qrvey_iac_lock_holders WHERE workspace = 'ws'")
        assert holder["id"] == lock_id and holder["backend_pid"] == backend and holder["lock"] == "postgres"
        assert holder["ci_run"] == "https://github.com/acme/bi/actions/runs/77"
        with pytest.raises(StateLockedError, match=r"It runs in CI run https://github.com/acme/bi/actions/runs/77"):
            with PostgresLocker(database(dsn), "ws").lock("plan"):
                pass
    assert rows(dsn, "SELECT count(*) FROM qrvey_iac_lock_holders") == [(0,)]


HOLDER = textwrap.dedent("""
    import sys, time
    from qrvey_iac.adapters.state.postgres import PostgresDatabase, PostgresLocker
    dsn = sys.stdin.readline().strip()
    with PostgresLocker(PostgresDatabase(lambda: dsn, "held"), sys.argv[1]).lock("apply") as lock_id:
        print(lock_id, flush=True)
        time.sleep(600)
""")


def test_a_sigkilled_holder_frees_the_lock_at_once_and_its_row_is_no_holder(dsn):
    process = subprocess.Popen([sys.executable, "-c", HOLDER, "ws"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    process.stdin.write(dsn + "\n")
    process.stdin.flush()
    lock_id = process.stdout.readline().strip()
    locker = PostgresLocker(database(dsn), "ws")
    try:
        assert locker.holder()["id"] == lock_id
        with pytest.raises(StateError, match="held by a running process"):
            locker.unlock(lock_id)
    finally:
        process.kill()
        process.wait()
    deadline = time.monotonic() + 10                  # the server notices the closed socket at once
    while locker.holder() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert locker.holder() is None
    assert rows(dsn, "SELECT holder->>'id' FROM qrvey_iac_lock_holders") == [(lock_id,)]   # left, but not a lock
    with pytest.raises(StateError, match="is not locked"):
        locker.unlock(lock_id)
    with locker.lock("apply", timeout=0) as second:
        assert locker.holder()["id"] == second


def test_unlock_force_ends_the_holders_session(dsn):
    process = subprocess.Popen([sys.executable, "-c", HOLDER, "ws"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    process.stdin.write(dsn + "\n")
    process.stdin.flush()
    lock_id = process.stdout.readline().strip()
    try:
        locker = PostgresLocker(database(dsn), "ws")
        assert locker.unlock(lock_id, force=True)["id"] == lock_id
        assert locker.holder() is None
        assert process.poll() is None                 # the process runs on; its session is gone
    finally:
        process.kill()
        process.wait()


# --- the DSN and its password --------------------------------------------------------------


def test_the_password_never_shows_in_an_error_or_a_log(postgres, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = postgres.dsn(password="Wr0ng-" + PASSWORD)
    cases = {
        "wrong password": wrong,
        "no server there": f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/postgres",
        "no such database": postgres.dsn("no_such_database"),
        "unreadable DSN": f"host=127.0.0.1 password={PASSWORD} nonsense",
        "unknown option": f"host=127.0.0.1 password={PASSWORD} bogus={PASSWORD}",
    }
    secrets: set[str] = set()
    for case, dsn in cases.items():
        db = PostgresDatabase(lambda dsn=dsn: dsn, "state workspace 'ws' (postgres, DSN in $X)", secrets)
        for attempt in (lambda: PostgresStateStore(db, "ws").read(),
                        lambda: PostgresStateStore(db, "ws").write(state(1, {}), 0),
                        lambda: PostgresLocker(db, "ws").holder()):
            with pytest.raises(StateError) as caught:
                attempt()
            text = str(caught.value)
            assert PASSWORD not in text and dsn not in text, (case, text)
            assert text.startswith("state workspace 'ws' (postgres, DSN in $X): "), text
    assert PASSWORD in secrets                       # handed to the CLI's masking
    assert PASSWORD not in caplog.text


def test_a_failed_write_is_a_write_error_and_keeps_the_stored_state(dsn):
    store = PostgresStateStore(database(dsn), "ws")
    store.write(state(1, {"dataset.a": resource(1)}), 0)
    rows(dsn, "ALTER TABLE qrvey_iac_resources ADD CONSTRAINT small CHECK (length(address) < 12) NOT VALID")
    with pytest.raises(StateWriteError, match="the state stored before this write is whole and unchanged"):
        store.write(state(2, {"dataset.a": resource(1), "dataset.toolong": resource(2)}), 1)
    assert PostgresStateStore(database(dsn), "ws").read() == state(1, {"dataset.a": resource(1)})


def test_a_lock_released_between_the_attempt_and_the_look_is_taken_not_refused(dsn, monkeypatch):
    """A command without --lock-timeout is refused only while the lock is still held: a holder
    that finished just after the attempt failed (seen in the chaos run of eight applies on one
    workspace) leaves the lock free, and the command takes it instead of reporting "locked by
    another command"."""
    holding = PostgresLocker(database(dsn), "ws").lock("apply")
    holding.__enter__()
    real_holder = PostgresLocker.holder
    released: list[bool] = []

    def finishing_first(self):
        if not released:                 # the holder ends right after our attempt failed
            released.append(True)
            holding.__exit__(None, None, None)
        return real_holder(self)

    monkeypatch.setattr(PostgresLocker, "holder", finishing_first)
    locker = PostgresLocker(database(dsn), "ws")
    with locker.lock("destroy", timeout=0) as lock_id:
        assert released and real_holder(locker)["id"] == lock_id
    locker.close()

