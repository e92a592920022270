"""Fault rules and their spec language.

Grammar (whitespace is free around the separators)::

    spec     := clause (";" clause)*
    clause   := METHOD ROUTE ":" action ("," action)*
    METHOD   := GET | POST | PUT | DELETE | PATCH | *
    ROUTE    := a path after /devapi/v4/user/{u}/app/{a}, "*" matching any characters
    action   := KIND ["@" TRIGGER] [" retry-after=" SECONDS]
    KIND     := 429 | 500 | 503 | drop | lost-500 | lost-drop | load-fail
              | latency=DURATION [("~" | "±") DURATION] | late=DURATION
              | body=null | body=empty | body=html | body=error | other-id
              | trickle=DURATION | endless
    TRIGGER  := PROBABILITY (0.05, 5%) | first=N | every=N      (none: every matching call)
    DURATION := NUMBER ("ms" | "s")

Example: ``POST /qollect/dataset: 429@0.05 retry-after=1, lost-500@0.02; GET *: latency=50ms~20ms``.

A hostile or broken server (ANSWER_KINDS): the handler runs (a write is committed), then its
answer is replaced by a 200 whose body is ``null``, empty, an HTML page or Qrvey's error shape
(``body=...``), or keeps its status with another ``datasetId`` (``other-id``), or is sent one
byte at a time, DURATION apart (``trickle=``: never trips a per-read timeout). ``endless``, on
a listing (``POST .../all``) only, answers an empty page with a new cursor, forever, instead of
running the handler.

``late=DURATION`` is a write that lands late: the handler acts DURATION after the request
arrived and answers then, whether or not the client is still waiting (a client whose timeout
is shorter has given up; the change is committed all the same, as a real server does). Every
request the emulator has read is finished even when its client is gone: ``late`` only makes
it happen on purpose, counted apart (``fault_counts["late"]``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

REJECT_KINDS = ("429", "500", "503", "drop")  # answered before the handler runs: no effect
LOST_KINDS = ("lost-500", "lost-drop")  # the handler runs (committed), then the answer is lost
ANSWER_KINDS = ("body=null", "body=empty", "body=html", "body=error", "other-id", "trickle", "endless")
DELAY_KINDS = ("latency", "late")  # held before the handler acts; late: past the client's timeout
FAULT_KINDS = (*REJECT_KINDS, *LOST_KINDS, "load-fail", *DELAY_KINDS, *ANSWER_KINDS)
PARAMETRISED_KINDS = (*DELAY_KINDS, "trickle")  # written KIND=DURATION
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "*")


@dataclass(frozen=True)
class FaultRule:
    """One fault for the calls matching ``method`` and ``route``.

    Trigger: ``first=N`` (the first N matching calls), ``every=N`` (calls N, 2N, ...), else
    ``probability`` (drawn from the emulator's seeded generator; 1.0 means every call).
    """

    method: str
    route: str
    kind: str
    probability: float = 1.0
    first: int | None = None
    every: int | None = None
    retry_after: int = 1  # seconds, for 429
    latency_ms: float = 0.0  # for latency and late: the delay
    jitter_ms: float = 0.0  # for latency: uniform in latency_ms ± jitter_ms
    pause_ms: float = 0.0  # for trickle: between two bytes of the answer

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", self.method.upper())
        if self.method not in METHODS:
            raise ValueError(f"method {self.method!r} is not one of {', '.join(METHODS)}")
        if not self.route or not self.route.startswith(("/", "*")) or re.search(r"\s", self.route):
            raise ValueError(f"route {self.route!r} must start with '/' or '*' and contain no spaces")
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind {self.kind!r} is not one of {', '.join(FAULT_KINDS)}")
        self._check_trigger()
        if self.retry_after < 0 or self.latency_ms < 0 or self.jitter_ms < 0 or self.pause_ms < 0:
            raise ValueError("retry_after, latency_ms, jitter_ms and pause_ms must not be negative")

    def _check_trigger(self) -> None:
        if self.first is not None and self.every is not None:
            raise ValueError("a rule takes first=N or every=N, not both")
        for name in ("first", "every"):
            count = getattr(self, name)
            if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
                raise ValueError(f"{name} must be a whole number >= 1, got {count!r}")
        if (self.first is not None or self.every is not None) and self.probability != 1.0:
            raise ValueError("a rule takes a probability or first=N/every=N, not both")
        if not 0.0 < self.probability <= 1.0:
            raise ValueError(f"probability must be in (0, 1], got {self.probability!r}")

    def matches(self, method: str, path: str) -> bool:
        if self.method != "*" and self.method != method.upper():
            return False
        return _route_regex(self.route).fullmatch(path) is not None

    def action_text(self) -> str:
        """This rule's action in spec syntax (see the module docstring)."""
        text = self.kind
        if self.kind in DELAY_KINDS:
            text = f"{self.kind}={_format_ms(self.latency_ms)}"
            text += f"~{_format_ms(self.jitter_ms)}" if self.jitter_ms else ""
        if self.kind == "trickle":
            text = f"trickle={_format_ms(self.pause_ms)}"
        if self.first is not None:
            text += f"@first={self.first}"
        elif self.every is not None:
            text += f"@every={self.every}"
        elif self.probability != 1.0:
            text += f"@{self.probability!r}"
        if self.kind == "429":
            text += f" retry-after={self.retry_after}"
        return text

    def __str__(self) -> str:
        return f"{self.method} {self.route}: {self.action_text()}"


@dataclass(frozen=True)
class FaultSet:
    """An ordered set of fault rules; for each call, the first matching 4xx/5xx/drop rule that
    fires decides the outcome, while every firing latency or late rule adds its delay."""

    rules: tuple[FaultRule, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))

    def __str__(self) -> str:
        return "; ".join(str(rule) for rule in self.rules)


def parse_faults(spec: str) -> FaultSet:
    """Parse a fault spec; ValueError names the clause and what is wrong with it."""
    rules: list[FaultRule] = []
    for number, clause in enumerate(spec.split(";"), start=1):
        if not clause.strip():
            continue
        try:
            rules.extend(_parse_clause(clause))
        except ValueError as exc:
            raise ValueError(f"fault spec clause {number} ({clause.strip()!r}): {exc}") from None
    return FaultSet(tuple(rules))


def _parse_clause(clause: str) -> list[FaultRule]:
    target, colon, actions = clause.partition(":")
    if not colon:
        raise ValueError("expected 'METHOD ROUTE: action, ...'")
    parts = target.split()
    if len(parts) != 2:
        raise ValueError(f"expected a method and a route before ':', got {target.strip()!r}")
    method, route = parts
    texts = [text.strip() for text in actions.split(",")]
    if not all(texts):
        raise ValueError("empty action (expected e.g. '503@0.1' or 'latency=50ms')")
    return [FaultRule(method, route, **_parse_action(text)) for text in texts]


def _parse_action(text: str) -> dict:
    head, *params = text.split()
    kind_text, at, trigger = head.partition("@")
    fields = _parse_kind(kind_text)
    if at:
        fields.update(_parse_trigger(trigger))
    for param in params:
        name, equals, value = param.partition("=")
        if name != "retry-after" or not equals:
            raise ValueError(f"unknown parameter {param!r} (only retry-after=SECONDS, for 429)")
        if fields["kind"] != "429":
            raise ValueError(f"retry-after applies to 429 only, not {fields['kind']}")
        if not value.isdigit():
            raise ValueError(f"retry-after must be whole seconds, got {value!r}")
        fields["retry_after"] = int(value)
    return fields


def _parse_kind(text: str) -> dict:
    if text.startswith("latency="):
        mean, _, jitter = re.sub("±", "~", text.removeprefix("latency=")).partition("~")
        return {"kind": "latency", "latency_ms": _parse_ms(mean), "jitter_ms": _parse_ms(jitter) if jitter else 0.0}
    if text.startswith("trickle="):
        return {"kind": "trickle", "pause_ms": _parse_ms(text.removeprefix("trickle="))}
    if text.startswith("late="):
        return {"kind": "late", "latency_ms": _parse_ms(text.removeprefix("late="))}
    if text not in FAULT_KINDS or text in PARAMETRISED_KINDS:
        kinds = ", ".join(kind for kind in FAULT_KINDS if kind not in PARAMETRISED_KINDS)
        raise ValueError(f"unknown fault {text!r} (expected one of {kinds}, latency=DURATION[~DURATION], "
                         "late=DURATION, trickle=DURATION)")
    return {"kind": text}


def _parse_trigger(text: str) -> dict:
    name, equals, value = text.partition("=")
    if equals:
        if name not in ("first", "every") or not value.isdigit() or int(value) < 1:
            raise ValueError(f"bad trigger {text!r} (expected first=N or every=N with N >= 1)")
        return {name: int(value)}
    try:
        probability = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"bad trigger {text!r} (expected a probability like 0.05 or 5%)") from None
    if not 0.0 < probability <= 1.0:
        raise ValueError(f"probability {text!r} must be above 0 and at most 1 (100%)")
    return {"probability": probability}


def _parse_ms(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)", text.strip())
    if match is None:
        raise ValueError(f"bad duration {text!r} (expected e.g. 50ms or 1.5s)")
    value = float(match.group(1))
    return value * 1000 if match.group(2) == "s" else value


def _format_ms(value: float) -> str:
    return f"{int(value) if float(value).is_integer() else value!r}ms"


@functools.lru_cache(maxsize=256)
def _route_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))
