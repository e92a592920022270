"""Manifests read and parsed by the child process (adapters/yaml_worker.py) give exactly what
reading them in the command's own process gives; a worker that cannot help changes nothing
but where the work is done; a load left early stops the child."""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import Future
from pathlib import Path

import pytest
from test_yaml_one_pass import SNIPPETS

from qrvey_iac.adapters import yaml_source, yaml_worker
from qrvey_iac.adapters.config import load_environment
from qrvey_iac.adapters.manifest_files import load_manifest, load_manifest_async
from qrvey_iac.adapters.yaml_source import run_steps
from qrvey_iac.core.errors import ManifestError

REPO = Path(__file__).resolve().parents[2]
ENV = load_environment(REPO / "qrvey-iac.yaml", "local")
EXTRA = {
    "not utf-8": b"a: \xff\n",
    "a date under a merge key": b"base: &b {when: 2024-05-01}\nother:\n  <<: *b\n",
    "placeholders": b"spec:\n  name: ${var.prefix}-x\n  items: ['${env:HOME}', plain]\n",
    "deep": b"a: " + b"[" * 150 + b"]" * 150 + b"\n",
}


def files(folder: Path) -> list[tuple[Path, str]]:
    written = []
    for index, (name, text) in enumerate([*((n, t.encode()) for n, t in SNIPPETS.items()), *EXTRA.items()]):
        path = folder / f"{index:02d}.yaml"
        path.write_bytes(text)
        written.append((path, f"{name}.yaml"))
    written.append((folder / "missing.yaml", "missing.yaml"))
    return written


def comparable(read):
    text, read_problems, (documents, parse_problems) = read
    return (text, read_problems, parse_problems,
            [(d.file, d.data, d.line, d.lines, d.refused, d.placeholders, d.index) for d in documents])


@pytest.fixture
def worker_always(monkeypatch):
    monkeypatch.setattr(yaml_worker, "WORKER_FROM_BYTES", 0)


@pytest.fixture
def started(monkeypatch):
    """The workers started, in order."""
    workers = []
    start = yaml_worker._Worker.start.__func__

    def recording(cls, listed):
        workers.append(start(cls, listed))
        return workers[-1]

    monkeypatch.setattr(yaml_worker._Worker, "start", classmethod(recording))
    return workers


def test_the_child_gives_what_reading_here_gives_for_every_kind_of_stream(tmp_path, worker_always, monkeypatch,
                                                                        started):
    listed = files(tmp_path)
    here = [comparable(run_steps(yaml_worker.read_and_parse(path, shown))) for path, shown in listed]

    def not_here(path, shown):
        raise AssertionError(f"{shown} was read in the command's process")

    parse_here = yaml_worker.parse_steps
    monkeypatch.setattr(yaml_worker, "read_and_parse", not_here)
    fallbacks = []

    def noted(text, shown):
        fallbacks.append(shown)
        return (yield from parse_here(text, shown))

    monkeypatch.setattr(yaml_worker, "parse_steps", noted)
    with yaml_worker.FileReader(listed) as reader:
        there = [comparable(run_steps(reader.steps(index))) for index in range(len(listed))]
    assert there == here
    assert len(started) == 1 and started[0].process.returncode == 0
    assert fallbacks == []                                    # every file parsed by the child


def test_a_value_marshal_cannot_hold_sends_the_text_alone_and_the_file_is_parsed_here(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("a: 1\n")
    text, problems, (documents, _) = run_steps(yaml_worker.read_and_parse(path, "a.yaml"))
    documents[0].data["when"] = datetime.date(2024, 5, 1)       # no YAML read here makes one, but
    record = yaml_worker._encoded((text, problems, (documents, [])))
    assert yaml_worker._decoded(record, "a.yaml") == (text, [], None)

    class Answered:
        answers = [Future()]

        def taken(self):
            pass

        def stop(self):
            pass

    Answered.answers[0].set_result(record)
    reader = yaml_worker.FileReader([(path, "a.yaml")])
    reader._worker = Answered()
    _, _, (again, _) = run_steps(reader.steps(0))
    assert [d.data for d in again] == [{"a": 1}]


def test_small_manifests_are_read_here_without_a_child(tmp_path, started):
    listed = files(tmp_path)
    with yaml_worker.FileReader(listed) as reader:
        run_steps(reader.steps(0))
    assert started == []


def test_a_manifest_load_through_the_child_equals_one_without(worker_always, started, monkeypatch):
    with_child = load_manifest(REPO / "manifests", ENV.apps, ENV.variables, dict(os.environ))
    assert len(started) == 1
    monkeypatch.setattr(yaml_worker, "WORKER_FROM_BYTES", 1 << 60)
    assert load_manifest(REPO / "manifests", ENV.apps, ENV.variables, dict(os.environ)) == with_child


def test_a_manifest_problem_found_through_the_child_is_the_same(tmp_path, worker_always, monkeypatch):
    (tmp_path / "bad.yaml").write_text("apiVersion: qrvey-iac/v1\nkind: Dataset\nmetadata:\n  name: x\n"
                                       "spec:\n  app: sales\n  name: x\n  name: y\n")
    with pytest.raises(ManifestError) as through_child:
        load_manifest(tmp_path, ENV.apps, ENV.variables, {})
    monkeypatch.setattr(yaml_worker, "WORKER_FROM_BYTES", 1 << 60)
    with pytest.raises(ManifestError) as here:
        load_manifest(tmp_path, ENV.apps, ENV.variables, {})
    assert [str(p) for p in through_child.value.problems] == [str(p) for p in here.value.problems]
    assert any(str(p).endswith("bad.yaml:8: spec.name: duplicate key") for p in here.value.problems)


@pytest.mark.parametrize("child", ["missing", "/bin/true", "/bin/cat", "#!/bin/sh\nexec yes\n"])
def test_a_child_that_cannot_start_or_answers_nothing_usable_leaves_the_work_here(
    tmp_path, worker_always, monkeypatch, caplog, child
):
    """Not there, gone at once, echoing what it was sent, answering garbage forever."""
    executable = child
    if child.startswith("#!") or child == "missing":
        executable = str(tmp_path / "child")
        if child != "missing":
            Path(executable).write_text(child)
            os.chmod(executable, 0o755)
    (tmp_path / "in").mkdir()
    listed = files(tmp_path / "in")
    here = [comparable(run_steps(yaml_worker.read_and_parse(path, shown))) for path, shown in listed]
    monkeypatch.setattr(sys, "executable", executable)
    with caplog.at_level(logging.DEBUG, logger="qrvey_iac.manifests"):
        with yaml_worker.FileReader(listed) as reader:
            there = [comparable(run_steps(reader.steps(index))) for index in range(len(listed))]
    assert there == here
    assert "the YAML worker did not read" in caplog.text


def test_a_child_killed_half_way_leaves_the_rest_here(tmp_path, worker_always, started):
    listed = files(tmp_path)
    here = [comparable(run_steps(yaml_worker.read_and_parse(path, shown))) for path, shown in listed]
    with yaml_worker.FileReader(listed) as reader:
        first = comparable(run_steps(reader.steps(0)))
        started[0].process.kill()
        rest = [comparable(run_steps(reader.steps(index))) for index in range(1, len(listed))]
    assert [first, *rest] == here


def test_a_load_cancelled_while_the_child_parses_stops_the_child(tmp_path, worker_always, started):
    """(What the command then says: tests/chaos/test_signals.py, a signal while the worker parses.)"""
    (tmp_path / "big.yaml").write_text("---\n".join(f"a{i}: [{', '.join(str(n) for n in range(3000))}]\n"
                                                    for i in range(60)))

    async def cancelled_load() -> None:
        load = asyncio.ensure_future(load_manifest_async(tmp_path, ENV.apps, ENV.variables, {}))
        while not started:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.05)
        assert not started[0].answers[0].done()
        load.cancel()
        with pytest.raises(asyncio.CancelledError):
            await load

    asyncio.run(cancelled_load())
    assert started[0].process.returncode is not None       # killed and reaped, not left running


def test_the_command_holds_no_more_than_a_few_answers_it_has_not_taken(tmp_path, worker_always, monkeypatch,
                                                                      started):
    monkeypatch.setattr(yaml_worker, "READ_AHEAD", 2)
    listed = files(tmp_path)
    with yaml_worker.FileReader(listed) as reader:
        run_steps(reader.steps(0))
        started[0].answers[2].result(timeout=10)            # the child is well under way
        time.sleep(0.2)
        assert sum(answer.done() for answer in started[0].answers) == 3     # file 0, then room for 2
        rest = [comparable(run_steps(reader.steps(index))) for index in range(1, len(listed))]
    assert len(rest) == len(listed) - 1


def _child(tmp_path: Path, script: str) -> str:
    path = tmp_path / "child"
    path.write_text(script)
    os.chmod(path, 0o755)
    return str(path)


def test_a_child_that_starts_and_never_answers_is_killed_and_the_files_read_here(tmp_path, worker_always,
                                                                                monkeypatch, started):
    monkeypatch.setattr(yaml_worker, "_ANSWER_DEADLINE_S", 0.5)
    monkeypatch.setattr(sys, "executable", _child(tmp_path, "#!/bin/sh\nexec sleep 60\n"))
    (tmp_path / "in").mkdir()
    listed = files(tmp_path / "in")
    with yaml_worker.FileReader(listed) as reader:
        read = [comparable(run_steps(reader.steps(index))) for index in range(len(listed))]
    assert read == [comparable(run_steps(yaml_worker.read_and_parse(path, shown))) for path, shown in listed]
    assert started[0].process.returncode == -signal.SIGKILL


def test_a_child_that_answers_garbage_is_stopped_at_once(tmp_path, worker_always, monkeypatch, started):
    monkeypatch.setattr(sys, "executable", _child(tmp_path, "#!/bin/sh\necho a banner, not a greeting\n"
                                                            "exec sleep 60\n"))
    (tmp_path / "in").mkdir()
    with yaml_worker.FileReader(files(tmp_path / "in")) as reader:
        with pytest.raises(yaml_worker.WorkerGone):
            started[0].answers[0].result(timeout=30)
        assert started[0].process.wait(timeout=5) == -signal.SIGKILL    # not left parsing till close
        run_steps(reader.steps(0))


@pytest.mark.parametrize("executable", [None, ""])
def test_a_python_that_does_not_know_its_executable_reads_the_files_here(tmp_path, worker_always, monkeypatch,
                                                                       executable):
    monkeypatch.setattr(sys, "executable", executable)
    listed = files(tmp_path)
    with yaml_worker.FileReader(listed) as reader:
        assert comparable(run_steps(reader.steps(0))) == comparable(run_steps(yaml_worker.read_and_parse(*listed[0])))


def test_a_child_running_another_copy_of_the_code_refuses_and_the_files_are_read_here(
    tmp_path, worker_always, monkeypatch, started, caplog
):
    other = tmp_path / "other_yaml_worker.py"
    other.write_text("")
    monkeypatch.setattr(yaml_worker, "__file__", str(other))     # what the command says it runs
    listed = files(tmp_path)
    with caplog.at_level(logging.DEBUG, logger="qrvey_iac.manifests"):
        with yaml_worker.FileReader(listed) as reader:
            run_steps(reader.steps(0))
    assert started[0].process.returncode == 3
    assert "exited with code 3" in caplog.text


def test_the_child_keeps_the_commands_isolation():
    shown = subprocess.run([sys.executable, "-I", "-c", "from qrvey_iac.adapters.yaml_worker import _command;"
                            "print(_command()[1:])"], capture_output=True, text=True, check=True).stdout
    assert shown.strip() == "['-I', '-E', '-s', '-P', '-m', 'qrvey_iac.adapters.yaml_worker']"


def test_a_synchronous_load_interrupted_while_it_waits_stops_its_steps_at_once(monkeypatch):
    """(validate, state show: Ctrl-C while the worker parses must stop it then, not when the
    traceback is collected.)"""
    closed = []

    def steps():
        try:
            yield Future()
        finally:
            closed.append(True)

    def interrupted(waited):
        raise KeyboardInterrupt

    monkeypatch.setattr(yaml_source.futures, "wait", interrupted)
    with pytest.raises(KeyboardInterrupt) as interruption:
        run_steps(steps())
    assert closed == [True]            # while the traceback (and the frame holding the steps) lives
    assert interruption.traceback
