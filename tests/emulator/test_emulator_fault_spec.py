"""The fault spec language: what parses to what, and precise errors for what does not."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qrvey_iac.emulator import FaultRule, FaultSet, parse_faults
from qrvey_iac.emulator.injector import FaultInjector


def test_the_documented_example_parses_to_these_rules():
    spec = "POST /qollect/dataset: 429@0.05 retry-after=1, lost-500@0.02; GET *: latency=50ms~20ms; * *: 503@0.1"
    assert parse_faults(spec) == FaultSet(
        (
            FaultRule("POST", "/qollect/dataset", "429", probability=0.05, retry_after=1),
            FaultRule("POST", "/qollect/dataset", "lost-500", probability=0.02),
            FaultRule("GET", "*", "latency", latency_ms=50, jitter_ms=20),
            FaultRule("*", "*", "503", probability=0.1),
        )
    )


@pytest.mark.parametrize(
    ("spec", "rule"),
    [
        ("get /qollect/dataset/*: 503@first=2", FaultRule("GET", "/qollect/dataset/*", "503", first=2)),
        ("* */publishVersion: drop@every=3", FaultRule("*", "*/publishVersion", "drop", every=3)),
        ("PUT *: lost-drop@25%", FaultRule("PUT", "*", "lost-drop", probability=0.25)),
        ("POST */load: load-fail", FaultRule("POST", "*/load", "load-fail")),
        ("* *: latency=1.5s±0.5s", FaultRule("*", "*", "latency", latency_ms=1500, jitter_ms=500)),
        ("* *: latency=10ms@0.5", FaultRule("*", "*", "latency", latency_ms=10, probability=0.5)),
        ("  DELETE   /connections/*  :  500  ", FaultRule("DELETE", "/connections/*", "500")),
        ("* *: 429", FaultRule("*", "*", "429", retry_after=1)),
    ],
)
def test_single_rules(spec, rule):
    assert parse_faults(spec) == FaultSet((rule,))


def test_empty_spec_and_empty_clauses_mean_no_faults():
    assert parse_faults("") == FaultSet()
    assert parse_faults(" ; * *: 500 ;") == FaultSet((FaultRule("*", "*", "500"),))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("GET *", "clause 1 ('GET *'): expected 'METHOD ROUTE: action, ...'"),
        ("*: 500", "expected a method and a route before ':'"),
        ("FETCH *: 500", "method 'FETCH' is not one of"),
        ("GET qollect: 500", "route 'qollect' must start with '/' or '*'"),
        ("GET *: 404", "unknown fault '404'"),
        ("GET *: 500,", "empty action"),
        ("GET *: 500@1.5", "probability '1.5' must be above 0 and at most 1"),
        ("GET *: 500@0", "probability '0' must be above 0"),
        ("GET *: 500@often", "bad trigger 'often'"),
        ("GET *: 500@first=0", "bad trigger 'first=0'"),
        ("GET *: 500@last=2", "bad trigger 'last=2'"),
        ("GET *: 500 retry-after=1", "retry-after applies to 429 only"),
        ("GET *: 429 retry-after=soon", "retry-after must be whole seconds"),
        ("GET *: 429 wait=1", "unknown parameter 'wait=1'"),
        ("GET *: latency=50", "bad duration '50'"),
        ("GET *: latency=fast~1ms", "bad duration 'fast'"),
        ("* *: 500; GET *: nope", "clause 2 ('GET *: nope')"),
    ],
)
def test_bad_specs_raise_value_error_naming_clause_and_problem(spec, message):
    with pytest.raises(ValueError) as raised:
        parse_faults(spec)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "500", "first": 1, "every": 2},
        {"kind": "500", "first": 1, "probability": 0.5},
        {"kind": "500", "first": 0},
        {"kind": "boom"},
        {"kind": "429", "retry_after": -1},
    ],
)
def test_rules_built_in_python_are_validated_too(kwargs):
    with pytest.raises(ValueError):
        FaultRule("GET", "*", **kwargs)


methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "*"])
routes = st.sampled_from(["*", "/qollect/dataset", "/qollect/dataset/*", "*/load", "/connections/*/x"])
triggers = st.one_of(
    st.builds(dict),
    st.builds(lambda n: {"first": n}, st.integers(1, 50)),
    st.builds(lambda n: {"every": n}, st.integers(1, 50)),
    st.builds(lambda p: {"probability": p}, st.floats(0.001, 1.0)),
)
actions = st.one_of(
    st.builds(
        lambda kind: {"kind": kind}, st.sampled_from(["500", "503", "drop", "lost-500", "lost-drop", "load-fail",
                                                      "body=null", "body=empty", "body=html", "body=error",
                                                      "other-id", "endless"])
    ),
    st.builds(lambda ms: {"kind": "trickle", "pause_ms": ms}, st.integers(0, 30_000).map(float)),
    st.builds(lambda seconds: {"kind": "429", "retry_after": seconds}, st.integers(0, 120)),
    st.builds(
        lambda ms, jitter: {"kind": "latency", "latency_ms": ms, "jitter_ms": jitter},
        st.integers(0, 5000).map(float),
        st.integers(0, 500).map(float),
    ),
)
rules = st.builds(lambda m, r, a, t: FaultRule(m, r, **a, **t), methods, routes, actions, triggers)


@given(st.lists(rules, max_size=5).map(FaultSet))
def test_str_of_a_fault_set_parses_back_to_it(fault_set):
    assert parse_faults(str(fault_set)) == fault_set


def test_route_patterns_match_the_path_after_the_prefix():
    rule = FaultRule("*", "*/publishVersion", "500")
    assert rule.matches("POST", "/qollect/dataset/abc/publishVersion")
    assert rule.matches("put", "/qollect/dataset/abc/publishVersion")
    assert not rule.matches("POST", "/qollect/dataset/abc/load")
    exact = FaultRule("POST", "/qollect/dataset", "500")
    assert exact.matches("POST", "/qollect/dataset") and not exact.matches("POST", "/qollect/dataset/all")
    assert not exact.matches("GET", "/qollect/dataset")


def test_first_and_every_count_matching_calls_only():
    injector = FaultInjector(parse_faults("GET /a: 503@first=2; GET /b: 500@every=3"), seed=0)
    a = [injector.decide("GET", "/a").rejects for _ in range(4)]
    b = []
    for _ in range(6):
        injector.decide("GET", "/other")
        b.append(injector.decide("GET", "/b").rejects)
    assert a == [True, True, False, False]
    assert b == [False, False, True, False, False, True]
    assert injector.counts == {"503": 2, "500": 2}


def test_jittered_latency_stays_in_its_band_and_varies():
    injector = FaultInjector(parse_faults("* *: latency=50ms~20ms"), seed=1)
    delays = [injector.decide("GET", "/x").latency_ms for _ in range(200)]
    assert all(30 <= delay <= 70 for delay in delays)
    assert len(set(delays)) > 100


def test_the_first_firing_outcome_rule_wins_and_latencies_add_up():
    injector = FaultInjector(parse_faults("* *: latency=10ms, 503, 500, latency=5ms"), seed=0)
    decision = injector.decide("GET", "/x")
    assert decision.outcome.kind == "503" and decision.latency_ms == 15
    assert injector.counts == {"503": 1, "latency": 2}


def test_probability_is_seeded():
    def draw(seed):
        injector = FaultInjector(parse_faults("* *: 500@0.3"), seed=seed)
        return [injector.decide("GET", "/x").rejects for _ in range(100)]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)
    assert 15 <= sum(draw(7)) <= 45


def test_late_parses_and_prints_back():
    faults = parse_faults("POST /qollect/dataset: late=31s@2%; PUT *: late=1.5s@first=1")
    late, second = faults.rules
    assert (late.kind, late.latency_ms, late.probability) == ("late", 31000.0, 0.02)
    assert (second.kind, second.latency_ms, second.first) == ("late", 1500.0, 1)
    assert str(faults) == "POST /qollect/dataset: late=31000ms@0.02; PUT *: late=1500ms@first=1"
    assert parse_faults(str(faults)) == faults


@pytest.mark.parametrize("text", ["POST *: late", "POST *: late=", "POST *: late=fast", "POST *: late=1s~1s"])
def test_bad_late_actions_are_refused(text):
    with pytest.raises(ValueError):
        parse_faults(text)
