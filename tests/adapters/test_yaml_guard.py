"""The nesting guard of yaml_source gives one answer, with its line, whichever loader reads.

PyYAML 6.0.4's wheels carry a libyaml that refuses more than 1000 levels while it scans
ahead of its events, so "[" x 1001 used to come out as "nested too deeply" without a line
(libyaml failed, then the pure-Python composer ran out of stack). Each case here runs with
libyaml and with the pure-Python loader alone.
"""

import pytest

from qrvey_iac.adapters import yaml_source
from qrvey_iac.core.errors import Problem

DEEP = "invalid YAML: nested more than 100 levels deep"

# shape -> (text of depth n, line where the 101st level opens)
SHAPES = {
    "flow lists": (lambda n: "[" * n + "]" * n, 1),
    "flow lists, one per line": (lambda n: "[\n" * n + "]" * n, 101),
    "flow mappings": (lambda n: "{a: " * n + "}" * n, 1),
    "compact sequences": (lambda n: "- " * n + "x", 1),
    "block mappings": (lambda n: "".join("  " * i + "a:\n" for i in range(n)) + "  " * n + "b: 1\n", 101),
}


@pytest.fixture(params=["libyaml", "pure-Python"])
def loader(request, monkeypatch):
    if request.param == "libyaml":
        if yaml_source.FAST_LOADER is None:
            pytest.skip("this PyYAML was built without libyaml")
    else:
        monkeypatch.setattr(yaml_source, "FAST_LOADER", None)
    return request.param


@pytest.mark.parametrize("depth", [101, 1000, 1001, 5000, 100_000])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_too_deep_is_refused_with_the_line_it_goes_too_deep(loader, shape, depth):
    make, line = SHAPES[shape]
    if shape == "block mappings":
        depth = min(depth, 1500)        # a million columns of indentation proves nothing more
    documents, problems = yaml_source.parse_documents(make(depth), "bad.yaml")
    assert (documents, problems) == ([], [Problem("bad.yaml", line, "", DEEP)])


def test_a_hundred_levels_are_allowed(loader):
    documents, problems = yaml_source.parse_documents("[" * 100 + "]" * 100, "ok.yaml")
    assert problems == []
    assert len(documents) == 1


def test_brackets_in_a_string_are_not_nesting(loader):
    text = "a: '" + "[" * 2000 + "'\n"
    documents, problems = yaml_source.parse_documents(text, "ok.yaml")
    assert problems == []
    assert documents[0].data == {"a": "[" * 2000}


def test_a_syntax_error_before_the_limit_is_reported_as_such(loader):
    text = "a: [1\nb: }\n" + "[" * 2000 + "]" * 2000 + "\n"
    documents, problems = yaml_source.parse_documents(text, "bad.yaml")
    assert documents == []
    assert len(problems) == 1
    assert problems[0].line == 2
    assert problems[0].message.startswith("invalid YAML: ") and problems[0].message != DEEP

