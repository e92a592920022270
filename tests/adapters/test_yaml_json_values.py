"""Issue 12, point 6: values JSON cannot carry are refused where the YAML is read.

Everything read from a manifest, the config or a values file is sent to Qrvey as JSON. A
YAML date, timestamp, ``!!binary``, ``!!set``, NaN, infinity or an integer beyond 2**53 - 1
(the largest a JSON number holds exactly; Qrvey's API is JavaScript) reached apply as a Python
object and failed there (``internal error: TypeError``). Each is now a problem at
file:line: field, with what to write instead, whichever loader and road reads it.
"""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from qrvey_iac.adapters import yaml_source
from qrvey_iac.adapters.yaml_source import parse_documents

MAX_JSON_INT = 2**53 - 1      # the bound chosen: the largest integer a JSON number holds exactly
LOADERS = [yaml.SafeLoader] + ([yaml.CSafeLoader] if hasattr(yaml, "CSafeLoader") else [])

REFUSED = {
    "date": ("2024-05-01", '2024-05-01 is read as a YAML date, which JSON cannot carry: '
                           'quote it ("2024-05-01") to keep it as text'),
    "timestamp": ("2001-12-14 21:59:43.10 -5", '2001-12-14 21:59:43.10 -5 is read as a YAML timestamp, which JSON '
                                               'cannot carry: quote it ("2001-12-14 21:59:43.10 -5") to keep it as text'),
    "binary": ("!!binary aGVsbG8=", "a !!binary value, which JSON cannot carry: write the text itself, "
                                    "or its base64 as a plain string without the !!binary tag"),
    "set": ("!!set {a, b}", "a YAML set (!!set), which JSON cannot carry: write a list instead"),
    "NaN": (".nan", ".nan is read as NaN, which JSON cannot carry: write a finite number, or quote it to keep it as text"),
    "infinity": ("-.Inf", "-.Inf is read as infinity, which JSON cannot carry: write a finite number, "
                          "or quote it to keep it as text"),
    "float too large": ("1.0e+400", "1.0e+400 is read as infinity, which JSON cannot carry: write a finite number, "
                                    "or quote it to keep it as text"),
    "integer too large": (str(MAX_JSON_INT + 1), f"{MAX_JSON_INT + 1} is beyond ±9007199254740991 (2**53 - 1), "
                                                 "the largest integer a JSON number holds exactly: quote it to keep it as text"),
    "integer too small": (str(-MAX_JSON_INT - 1), f"{-MAX_JSON_INT - 1} is beyond ±9007199254740991 (2**53 - 1), "
                                                  "the largest integer a JSON number holds exactly: quote it to keep it as text"),
    "hex integer too large": ("0x20000000000000", "0x20000000000000 is beyond ±9007199254740991 (2**53 - 1), "
                                                  "the largest integer a JSON number holds exactly: quote it to keep it as text"),
    "not an !!int": ("!!int twelve", "twelve is not a valid !!int"),          # crashed PyYAML's constructor
    "not a !!float": ("!!float x", "x is not a valid !!float"),
    "an empty !!int": ("!!int ''", '"" is not a valid !!int'),                 # IndexError in PyYAML
    "not a !!bool": ("!!bool maybe", "maybe is not a valid !!bool"),
    "not a !!timestamp": ("!!timestamp soon", 'soon is read as a YAML timestamp, which JSON cannot carry: '
                                             'quote it ("soon") to keep it as text'),
}


def read(text: str, loader: type, one_pass: bool):
    documents, problems = yaml_source._parse(text, "f.yaml", loader, one_pass=one_pass)
    return [d.data for d in documents], [str(p) for p in problems]


@pytest.mark.parametrize("one_pass", [True, False], ids=["one pass", "walk + PyYAML"])
@pytest.mark.parametrize("loader", LOADERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_value_json_cannot_carry_is_refused_at_its_line(case, loader, one_pass):
    value, message = REFUSED[case]
    text = f"spec:\n  name: x\n  customAttributes:\n    since: {value}\n"
    data, problems = read(text, loader, one_pass)
    assert problems == [f"f.yaml:4: spec.customAttributes.since: {message}"]
    json.dumps(data, allow_nan=False)      # what stays is JSON: the value as the text it was written as


@pytest.mark.parametrize("value", ["2024-05-01", ".nan", "!!binary aGk=", str(2**63)])
def test_refused_in_the_config_and_in_values_files_too(tmp_path, value):
    from qrvey_iac.adapters.config import read_config
    from qrvey_iac.adapters.variables import merge_variables
    from qrvey_iac.core.errors import ConfigError

    values = tmp_path / "values.yaml"
    values.write_text(f"db: shop\nstart: {value}\n")
    with pytest.raises(ConfigError) as raised:
        merge_variables([str(values)], [])
    assert [p.line for p in raised.value.problems] == [2]
    config = tmp_path / "qrvey-iac.yaml"
    config.write_text("environments:\n  local:\n    endpoint: local\n    apps: {sales: {userId: u, appId: a}}\n"
                      f"    variables: {{start: {value}}}\n")
    with pytest.raises(ConfigError) as raised:
        read_config(config)
    assert [(p.line, p.field) for p in raised.value.problems] == [(5, "environments.local.variables.start")]


@pytest.mark.parametrize("value", [str(MAX_JSON_INT), str(-MAX_JSON_INT), "1.5e300", "-0.0", "'2024-05-01'",
                                   '"nan"', "!!str 2024-05-01", "0o17", "yes", "~"])
def test_values_json_carries_are_kept(value):
    documents, problems = parse_documents(f"a: {value}\n", "f.yaml")
    assert problems == []
    json.dumps(documents[0].data, allow_nan=False)


def test_keys_that_are_not_text_are_refused():
    text = "spec:\n  customAttributes:\n    1: one\n    on: yes\n    ~: z\n    2024-05-01: d\n    ok: fine\n"
    for loader in LOADERS:
        data, problems = read(text, loader, one_pass=True)
        assert problems == [
            'f.yaml:3: spec.customAttributes.1: this key is read as an integer, not text: quote it ("1")',
            'f.yaml:4: spec.customAttributes.on: this key is read as true or false, not text: quote it ("on")',
            'f.yaml:5: spec.customAttributes.~: this key is read as null, not text: quote it ("~")',
            'f.yaml:6: spec.customAttributes.2024-05-01: this key is read as a date, not text: quote it ("2024-05-01")',
        ]
        assert data == [{"spec": {"customAttributes": {"1": "one", "on": True, "~": "z", "2024-05-01": "d",
                                                       "ok": "fine"}}}]


def test_every_problem_of_every_document_is_reported():
    text = ("a: 2024-01-01\nb: [.nan, 1, .inf]\n---\nc: {d: !!binary aGk=}\n---\n- ok\n---\n"
            "e: 99999999999999999999\ne: 1\n")
    documents, problems = parse_documents(text, "f.yaml")
    assert [(p.line, p.field) for p in problems] == [(1, "a"), (2, "b[0]"), (2, "b[2]"), (4, "c.d"), (8, "e"), (9, "e")]
    assert problems[-1].message == "duplicate key"
    assert len(documents) == 4      # each still read, so its other mistakes are found in the same run


def test_an_alias_repeats_a_value_not_its_problem():
    documents, problems = parse_documents("a: &d 2024-01-01\nb: *d\nc: [*d]\n", "f.yaml")
    assert [(p.line, p.field) for p in problems] == [(1, "a")]
    assert documents[0].data == {"a": "2024-01-01", "b": "2024-01-01", "c": ["2024-01-01"]}


TAGS = st.sampled_from(["!!int", "!!float", "!!bool", "!!null", "!!timestamp", "!!binary", "!!str", "!!set", "!!seq",
                        "!!map", "!!omap", "!!pairs"])


@settings(max_examples=150, deadline=None)
@given(TAGS, st.text(st.sampled_from("0123456789.-+_:eExXoObB aZ=/tT~"), max_size=12), st.booleans())
def test_an_explicit_tag_on_any_text_is_a_problem_or_a_value_never_a_crash(tag, text, alias):
    stream = f"a: {tag} {json.dumps(text)}\n" + ("b: &x 1\nc: *x\n" if alias else "")
    documents, problems = parse_documents(stream, "f.yaml")
    if not problems:
        json.dumps([d.data for d in documents], allow_nan=False)
