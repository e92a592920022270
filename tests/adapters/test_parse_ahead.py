"""Manifests parsed in a worker process (adapters/parse_ahead.py) give what parsing here gives.

The worker is started for real (spawned) in these tests by lowering the size above which it is
used; a worker that fails is stood in for by an executor whose futures fail.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from qrvey_iac.adapters import manifest_files, parse_ahead
from qrvey_iac.adapters.manifest_files import load_manifest, load_manifest_async
from qrvey_iac.adapters.yaml_source import parse_documents
from qrvey_iac.core.errors import ManifestError
from qrvey_iac.core.keys import AppRef

REPO = Path(__file__).resolve().parents[2]
APPS = {"sales": AppRef("u-hq-owner", "a-sales"), "emea": AppRef("u-emea-owner", "a-emea"),
        "apac": AppRef("u-apac-owner", "a-apac")}
ENVIRON = {"WAREHOUSE_PASSWORD": "parse-ahead-test"}     # the example connection's ${env:}
VARIABLES = {"warehouse_connection": "conn-warehouse", "crm_connection": "conn-crm", "warehouse_db": "shop"}
TEXTS = [
    ("a: 1\nb: [1, 2]\n---\nc: {d: e}\n", "two.yaml"),
    ("a: [1, 2\nb: 3\n", "broken.yaml"),
    ("a: 1\na: 2\n", "duplicate.yaml"),
    ("x:" + " [" * 200 + "1" + "]" * 200 + "\n", "deep.yaml"),
    ("big: '" + "z" * 300_000 + "'\n", "big.yaml"),      # a batch of its own
    ("", "empty.yaml"),
]


def comparable(parsed):
    documents, problems = parsed
    return [(d.file, d.data, d.line, d.lines, d.refused) for d in documents], problems


def through_the_worker(texts):
    ahead = parse_ahead.ParseAhead.start(texts, threshold=0)
    assert ahead is not None, "the worker did not start"
    try:
        results = []
        for item in ahead.parsed():
            if isinstance(item, Future):
                wait([item], timeout=60)
                continue
            results.append(item)
        return results
    finally:
        ahead.close()


def test_the_worker_returns_what_parsing_here_returns():
    results = through_the_worker(TEXTS)
    assert [comparable(r) for r in results] == [comparable(parse_documents(t, s)) for t, s in TEXTS]
    assert results[1][1] and results[2][1] and results[3][1]     # the broken ones keep their problems


def test_small_manifests_are_parsed_here():
    assert parse_ahead.ParseAhead.start(TEXTS[:2]) is None
    assert parse_ahead.ParseAhead.start([]) is None


def test_a_failing_worker_leaves_the_parse_to_this_process(monkeypatch):
    class Broken:
        def __init__(self, *args, **kwargs):
            pass

        def submit(self, fn, *args):
            future = Future()
            future.set_exception(BrokenProcessPool("the worker died"))
            return future

        def shutdown(self, wait=True, cancel_futures=False):
            pass

    monkeypatch.setattr(parse_ahead, "ProcessPoolExecutor", Broken)
    results = through_the_worker(TEXTS)
    assert [comparable(r) for r in results] == [comparable(parse_documents(t, s)) for t, s in TEXTS]


def test_a_worker_that_cannot_start_is_no_worker(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("no processes here")

    monkeypatch.setattr(parse_ahead, "ProcessPoolExecutor", refuse)
    assert parse_ahead.ParseAhead.start(TEXTS, threshold=0) is None


def test_the_example_manifests_load_the_same_either_way(monkeypatch):
    here = load_manifest(REPO / "manifests", APPS, VARIABLES, ENVIRON)
    monkeypatch.setattr(parse_ahead, "PARSE_AHEAD_BYTES", 0)
    started = []
    real_start = parse_ahead.ParseAhead.start
    monkeypatch.setattr(manifest_files.ParseAhead, "start",
                        classmethod(lambda cls, texts, threshold=None: started.append(1) or real_start(texts)))
    there = load_manifest(REPO / "manifests", APPS, VARIABLES, ENVIRON)
    awaited = asyncio.run(load_manifest_async(REPO / "manifests", APPS, VARIABLES, ENVIRON))
    assert started == [1, 1]
    assert there == here == awaited


def test_problems_found_by_the_worker_are_reported_with_their_lines(tmp_path, monkeypatch):
    (tmp_path / "a.yaml").write_text("apiVersion: qrvey-iac/v1\nkind: Dataset\nmetadata: {name: x}\nspec: [1, 2\n")
    (tmp_path / "b.yaml").write_text("apiVersion: qrvey-iac/v1\nkind: Nothing\nmetadata: {name: y}\nspec: {}\n")
    with pytest.raises(ManifestError) as here:
        load_manifest(tmp_path, APPS, {}, {})
    monkeypatch.setattr(parse_ahead, "PARSE_AHEAD_BYTES", 0)
    with pytest.raises(ManifestError) as there:
        load_manifest(tmp_path, APPS, {}, {})
    assert there.value.problems == here.value.problems and len(here.value.problems) == 2
