"""Large manifests read and parsed by a child process, beside the command's event loop.

Parsing YAML is CPU work that holds the GIL: libyaml scans in C but builds every node through
Python, so neither a thread nor the event loop's gaps take it off the core the refresh's
answers are handled on. When the manifests add up to ``WORKER_FROM_BYTES`` or more, one child
Python (``python -P -m qrvey_iac.adapters.yaml_worker``) reads and parses them, file by file,
in order, while the command goes on; the command takes each file's result as it needs it.
What it saves: docs/performance.md, "Issue 11, manifests parsed beside the refresh".

The result of a file is exactly what ``read_and_parse`` gives in this process (its text, the
problems reading it, its documents and the problems parsing it): the child sends it as a
``marshal`` record, the format Python uses for its own compiled files, which holds the plain
values parsed YAML is made of (a value marshal cannot hold makes the child send the text alone,
and the file is parsed here). Nothing is lost when the child cannot help: if it cannot be
started, exits, or answers something unreadable, the files it has not answered are read and
parsed here, and a DEBUG line on ``qrvey_iac.manifests`` says why.

The child is stopped with the command: it is killed when the load ends early (a problem, a
cancel, Ctrl-C), and it stops by itself when its pipe to the command closes.
"""

from __future__ import annotations

import logging
import marshal
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Generator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import yaml

from qrvey_iac.adapters.yaml_source import (
    FAST_LOADER, MAX_FILE_BYTES, LineSource, Parsed, YamlDocument, parse_steps, read_text, run_steps,
)
from qrvey_iac.core.errors import Problem

logger = logging.getLogger("qrvey_iac.manifests")

WORKER_FROM_BYTES = 1024 * 1024     # below this, starting a Python (~0.1 s of CPU) costs more than it saves
PROTOCOL = b"qrvey-iac-yaml-worker 2\n"
GREETING = b"qrvey-iac-yaml-worker 2: ready\n"    # what the child answers first (never an echo of PROTOCOL)
_LENGTH_BYTES = 8
_MAX_RECORD_BYTES = 64 * MAX_FILE_BYTES   # a file is at most MAX_FILE_BYTES; its record, text and values
READ_AHEAD = 4          # records the command holds before it takes them (each holds a file's text and values)
_EXIT_WAIT_S = 2.0
_ANSWER_DEADLINE_S = 10.0       # for the child's greeting: a Python that starts and reads its jobs      # for a child that has sent its last answer to exit by itself
_LOADERS = {loader.__name__: loader for loader in (FAST_LOADER, yaml.SafeLoader) if loader is not None}

# one file: its text (None when it could not be read), the problems reading it, what parsing gave
ReadFile = tuple[str | None, list[Problem], Parsed]
Steps = Generator["Future[Any] | None", None, ReadFile]


def read_and_parse(path: Path, shown: str) -> Steps:
    """A file's text and its parse, pausing (a bare ``yield``) after each document."""
    text, problems = read_text(path, shown)
    if text is None:
        return None, problems, ([], [])
    parsed = yield from parse_steps(text, shown)
    return text, problems, parsed


class FileReader:
    """Reads and parses ``files`` (path, shown name), in order: ``steps(i)`` gives file ``i``.

    Here, one document per pause; or, for large manifests, by a child process (see the module's
    docstring): then ``steps(i)`` yields the Future of the child's answer until it is done (the
    drivers wait for a yielded Future: ``run_steps`` and ``load_manifest_async``)."""

    def __init__(self, files: list[tuple[Path, str]]) -> None:
        self._files = files
        self._worker: _Worker | None = None
        if files and _total_bytes(files) >= WORKER_FROM_BYTES and not getattr(sys, "frozen", False):
            self._worker = _Worker.start(files)

    def steps(self, index: int) -> Steps:
        path, shown = self._files[index]
        if self._worker is not None:
            answer = self._worker.answers[index]
            if not answer.done():
                yield answer
            try:
                record = answer.result()
                self._worker.taken()
                text, read_problems, parsed = _decoded(record, shown)
            except Exception as gone:       # WorkerGone, or a record that does not decode: read it here
                logger.debug("the YAML worker did not read %s (%s): reading it here", shown, gone)
            else:
                if parsed is not None:
                    return text, read_problems, parsed
                parsed = yield from parse_steps(text, shown)       # a value marshal cannot hold
                return text, read_problems, parsed
        return (yield from read_and_parse(path, shown))

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def __enter__(self) -> FileReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class WorkerGone(Exception):
    """The child process gave no (usable) answer for a file."""


def _total_bytes(files: list[tuple[Path, str]]) -> int:
    total = 0
    for path, _ in files:
        try:
            total += path.stat().st_size
        except OSError:
            pass            # reading it will say why
    return total


class _Worker:
    """The child process and the thread that reads its answers into ``answers``: each file's
    record as it came, decoded when the file is taken (a record is several times smaller than
    the values it holds, and the files taken so far are slimmed as they are validated)."""

    def __init__(self, process: subprocess.Popen | None, count: int) -> None:
        self.process = process
        self.answers: list[Future[bytes]] = [Future() for _ in range(count)]
        self._room = threading.Semaphore(READ_AHEAD)     # records read and not taken yet, at most
        self._stopping = False

    @classmethod
    def start(cls, files: list[tuple[Path, str]]) -> _Worker:
        try:
            process = subprocess.Popen(_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL)
        except (OSError, ValueError, TypeError) as error:    # (sys.executable may be None or odd)
            worker = cls(None, len(files))
            worker._fail(0, f"it could not be started: {error}")
            return worker
        worker = cls(process, len(files))
        jobs = marshal.dumps((str(Path(__file__).resolve()), [(str(path), shown) for path, shown in files]))
        try:
            threading.Thread(target=worker._exchange, args=(jobs, files), name="qrvey-yaml-worker",
                             daemon=True).start()
        except RuntimeError as error:        # no thread to be had: the work stays here
            worker._give_up(0, f"its reader could not be started: {error}")
        return worker

    def _exchange(self, jobs: bytes, files: list[tuple[Path, str]]) -> None:
        process = self.process
        answered = 0
        # a child that never answers (a wrapper, not Python, stuck at start) is killed: its
        # files are then read here, rather than the command waiting for ever
        deadline = threading.Timer(_ANSWER_DEADLINE_S, process.kill)
        deadline.daemon = True
        deadline.start()
        try:
            process.stdin.write(PROTOCOL + len(jobs).to_bytes(_LENGTH_BYTES, "big") + jobs)
            process.stdin.close()
            if _read_exactly(process.stdout, len(GREETING)) != GREETING:
                raise ValueError("it answered something else than the worker's greeting")
            deadline.cancel()
            for index in range(len(files)):
                self._room.acquire()     # the child waits on its full pipe meanwhile
                if self._stopping:
                    raise EOFError("the load ended before this file was taken")
                self.answers[index].set_result(_read_record(process.stdout))   # decoded when taken
                answered = index + 1
        except Exception as error:      # whatever it is, every file not answered is read here
            self._give_up(answered, _why(process, error))
        finally:
            deadline.cancel()

    def _give_up(self, first: int, why: str) -> None:
        """No more answers from this child: it is stopped now, its files are read here."""
        self._fail(first, why)
        if self.process is not None and self.process.poll() is None:
            self.process.kill()

    def taken(self) -> None:
        """A record was taken: room for the next one."""
        self._room.release()

    def _fail(self, first: int, why: str) -> None:
        for answer in self.answers[first:]:
            if not answer.done():
                answer.set_exception(WorkerGone(why))

    def stop(self) -> None:
        """Reap the child: it exits by itself once it has answered every file; one that has not
        (the load ended early) is killed."""
        process = self.process
        if process is None:
            return
        self._stopping = True
        self._room.release()             # a reader waiting for room wakes, and stops
        try:
            process.wait(timeout=_EXIT_WAIT_S if all(answer.done() for answer in self.answers) else 0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()
            except OSError:
                pass


def _command() -> list[str]:
    """This module run by this Python, with the command's own isolation (``-I``, ``-E``, ``-s``)
    and never the current folder first on its path (``-P``)."""
    if not sys.executable:
        raise ValueError("this Python does not know its executable")
    flags = [flag for flag, on in (("-I", sys.flags.isolated), ("-E", sys.flags.ignore_environment),
                                   ("-s", sys.flags.no_user_site)) if on]
    return [sys.executable, *flags, "-P", "-m", __name__]


def _why(process: subprocess.Popen, error: Exception) -> str:
    try:       # a pipe that ended is a child exiting: its code says more, once it has gone
        code = process.wait(timeout=_EXIT_WAIT_S) if isinstance(error, EOFError) else process.poll()
    except subprocess.TimeoutExpired:
        code = None
    if code is not None:
        return f"it exited with code {code}"
    return f"its answer could not be read: {type(error).__name__}: {error}"


def _read_record(stream) -> bytes:
    head = _read_exactly(stream, _LENGTH_BYTES)
    size = int.from_bytes(head, "big")
    if size > _MAX_RECORD_BYTES:
        raise ValueError(f"a record of {size} bytes announced, more than a manifest can make")
    return _read_exactly(stream, size)


def _read_exactly(stream, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError(f"the pipe ended after {len(data)} of {size} bytes")
    return data


# -- the record of one file --------------------------------------------------------------------
# (text, read problems, documents, parse problems); documents None: parse the text here.
# A document: (file, data, line, known_lines, refused, placeholders, source loader name, index).

def _encoded(read: ReadFile) -> bytes:
    text, read_problems, (documents, parse_problems) = read
    problems = [_problem(p) for p in read_problems]
    try:
        return marshal.dumps((text, problems, [_document(d) for d in documents], [_problem(p) for p in parse_problems]))
    except ValueError:              # a value marshal cannot hold: the command parses this file itself
        return marshal.dumps((text, problems, None, None))


def _decoded(record: bytes, shown: str) -> ReadFile:
    text, read_problems, documents, parse_problems = marshal.loads(record)
    problems = [Problem(*p) for p in read_problems]
    if documents is None:
        return text, problems, None  # type: ignore[return-value]
    sources: dict[str, LineSource] = {}
    built = []
    for file, data, line, known_lines, refused, placeholders, loader, index in documents:
        source = None
        if loader is not None:
            source = sources.get(loader)
            if source is None:
                source = sources[loader] = LineSource(text, shown, _LOADERS[loader])
        built.append(YamlDocument(file, data, line, known_lines, frozenset(refused), placeholders, source, index))
    return text, problems, (built, [Problem(*p) for p in parse_problems])


def _document(document: YamlDocument) -> tuple:
    loader = document.source.loader_class.__name__ if document.source is not None else None
    return (document.file, document.data, document.line, document.known_lines, tuple(document.refused),
            document.placeholders, loader, document.index)


def _problem(problem: Problem) -> tuple:
    return problem.file, problem.line, problem.field, problem.message


# -- the child ------------------------------------------------------------------------------------

def main() -> None:
    """Read the jobs from stdin, answer one record per file on stdout, in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C is the command's: it stops this process
    source, out = sys.stdin.buffer, sys.stdout.buffer
    if source.read(len(PROTOCOL)) != PROTOCOL:
        sys.exit(2)
    expected, jobs = marshal.loads(_read_record(source))
    if not os.path.samefile(expected, __file__):
        sys.exit(3)                  # another qrvey_iac than the command's: it reads the files itself
    try:
        out.write(GREETING)
        out.flush()
        for path, shown in jobs:
            record = _encoded(run_steps(read_and_parse(Path(path), shown)))
            out.write(len(record).to_bytes(_LENGTH_BYTES, "big") + record)
            out.flush()
    except BrokenPipeError:          # the command went away: nothing left to answer
        sys.exit(0)


if __name__ == "__main__":
    main()
