"""responses.parse_json reads every text exactly as json.loads does (orjson underneath)."""

from __future__ import annotations

import json
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qrvey_iac.adapters.qrvey.responses import parse_json


def typed(value):
    """``value`` with every type kept apart (1 and 1.0 and True differ; -0.0 is not 0.0)."""
    if isinstance(value, dict):
        return ("dict", [(k, typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else struct.pack(">d", value))
    return (type(value).__name__, value)


def same_as_json(text: bytes) -> None:
    try:
        expected = ("value", typed(json.loads(text)))
    except (ValueError, RecursionError) as exc:
        expected = ("error", type(exc), str(exc))
    try:
        got = ("value", typed(parse_json(text)))
    except (ValueError, RecursionError) as exc:
        got = ("error", type(exc), str(exc))
    assert got == expected


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(2**80), max_value=2**80) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(JSON_VALUES, st.booleans())
def test_any_json_value_reads_as_json_reads_it(value, ascii_only) -> None:
    same_as_json(json.dumps(value, ensure_ascii=ascii_only).encode("utf-8"))


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_float_keeps_its_bits(number) -> None:
    same_as_json(repr(number).encode())
    same_as_json(f"{number:.17e}".encode())


@pytest.mark.parametrize("text", [
    b"18446744073709551616",            # 2**64: orjson alone reads a float
    b"-9223372036854775809",            # below int64
    b'{"n": 123456789012345678901234567890}',
    b'{"id": "1234567890123456789012"}',  # a long digit run inside a string: json, the same value
    b"1e400", b"-1e400", b"NaN", b"[Infinity, -Infinity]",
    b'["\\ud800"]',                      # a lone surrogate escape
    b'\xef\xbb\xbf{"a": 1}',             # a byte order mark
    '{"a": "\u00e9"}'.encode("utf-16"),  # UTF-16
    b'{"a": 1, "a": 2}',
    b"[" * 3000 + b"]" * 3000,           # too deep: the same RecursionError
    b"[" * 900 + b"]" * 900,
    b'{"a": }', b"", b"   ", b"nul", b"\xff\xfe\xfa", b'{"a": 1} trailing',
    b'"\\u00e9\\n"', b"-0", b"-0.0", b"1E2", b"5e-324", b"2.2250738585072014e-308",
])
def test_odd_texts_read_or_fail_as_json_does(text) -> None:
    same_as_json(text)
