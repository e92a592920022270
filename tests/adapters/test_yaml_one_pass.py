"""The one-pass builder of yaml_source gives what _walk + PyYAML's constructor give.

A differential test: every stream is read both ways, with libyaml and with the
pure-Python loader, and the documents (data, line, line map) and problems must match.
"""

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from qrvey_iac.adapters import yaml_source

REPO = Path(__file__).resolve().parents[2]
LOADERS = [yaml.SafeLoader] + ([yaml.CSafeLoader] if hasattr(yaml, "CSafeLoader") else [])

SNIPPETS = {
    "scalars": "a: 1\nb: 1.5\nc: yes\nd: ~\ne: null\nf: 2024-05-01\ng: '12'\nh: \"x\\ty\"\ni: 0x1f\nj: .inf\nk:\n",
    "block scalars": "text: |\n  two\n  lines\nfolded: >\n  one\n  line\n",
    "flow": "cols: [{columnName: A, columnType: NUMBER}, {columnName: B}]\nm: {x: [1, [2, 3]], y: {}}\n",
    "nested": "spec:\n  datasources:\n    - name: Main\n      query: select 1\n  columns:\n    - {columnName: T, visible: false}\n",
    "explicit tags": "a: !!str 12\nb: !!int '7'\nc: !!float 1\nd: !!binary aGk=\n",
    "duplicate keys": "a: 1\nb:\n  c: 2\n  c: 3\na: 4\n",
    "merge key": "base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n",
    "non-string keys": "1: one\ntrue: yes\n? [a, b]\n: pair\n",
    "custom tag": "a: !thing 1\n",
    "several documents": "---\na: 1\n---\n---\n- x\n- y: [1]\n...\n---\nz: 3\n",
    "empty": "",
    "scalar document": "just text\n",
    "aliases": "a: &x [1, 2]\nb: *x\n",
    "broken": "a: [1, 2\nb: 3\n",
}


def read(text: str, loader: type, one_pass: bool):
    documents, problems = yaml_source._parse(text, "f.yaml", loader, one_pass=one_pass)
    return [(d.data, d.line, d.lines, d.refused) for d in documents], problems


def assert_same(text: str) -> None:
    for loader in LOADERS:
        assert read(text, loader, True) == read(text, loader, False), loader.__name__


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_snippets_read_the_same_both_ways(name):
    assert_same(SNIPPETS[name])


@pytest.mark.parametrize("path", sorted((REPO / "manifests").glob("*.yaml")), ids=lambda p: p.name)
def test_the_example_manifests_read_the_same_both_ways(path):
    assert_same(path.read_text())


PLAIN = {"scalars", "block scalars", "flow", "nested", "explicit tags", "duplicate keys", "scalar document"}
NOT_PLAIN = {"merge key", "non-string keys", "custom tag"}


@pytest.mark.parametrize("name", sorted(PLAIN | NOT_PLAIN))
def test_plain_documents_take_the_one_pass_road_and_others_do_not(name):
    loader = LOADERS[-1](SNIPPETS[name])
    scalars = {t: (lambda node, c=loader.yaml_constructors[t]: c(loader, node)) for t in yaml_source._SCALAR_TAGS}
    node = loader.get_single_node()
    if name in PLAIN:
        yaml_source._build(node, (), {}, [], "f", scalars)
    else:
        with pytest.raises(yaml_source._NotPlain):
            yaml_source._build(node, (), {}, [], "f", scalars)


scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12))
data = st.recursive(scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=20)


@settings(max_examples=60, deadline=None)
@given(document=data, flow=st.sampled_from([None, True, False]))
def test_generated_documents_read_the_same_both_ways(document, flow):
    assert_same(yaml.safe_dump(document, default_flow_style=flow, allow_unicode=True))


def test_the_one_pass_notes_the_path_of_every_string_that_holds_a_placeholder():
    text = ("a: ${var.x}\nb: [plain, 'pre ${env:Y} post', {c: \"${var.z}\", d: 3}]\n"
            "e: {f: no placeholder, g: costs $5}\nkey${var.k}: 1\n")
    for loader in LOADERS:
        [document], problems = yaml_source._parse(text, "f.yaml", loader)
        assert problems == []
        assert document.placeholders == (("a",), ("b", 1), ("b", 2, "c"))   # keys are never interpolated


def test_a_document_read_by_the_walk_notes_no_placeholders_so_all_its_values_are_looked_at():
    [document], _ = yaml_source._parse("a: &x ['${var.x}']\nb: *x\n", "f.yaml", LOADERS[-1])
    assert document.data == {"a": ["${var.x}"], "b": ["${var.x}"]}
    assert document.placeholders is None


def test_remembered_tags_still_tell_a_plain_scalar_from_a_quoted_one():
    text = "a: 1\nb: '1'\nc: 1\nd: \"1\"\ne: yes\nf: 'yes'\ng: null\nh: 'null'\ni: 2024-05-01\nj: '2024-05-01'\n"
    [document], problems = yaml_source.parse_documents(text, "f.yaml")
    assert [(p.field, "read as a YAML date" in p.message) for p in problems] == [("i", True)]   # not j
    data = document.data
    assert (data["a"], data["b"], data["c"], data["d"]) == (1, "1", 1, "1")
    assert (data["e"], data["f"], data["g"], data["h"], data["j"]) == (True, "yes", None, "null", "2024-05-01")


def test_lines_of_a_valid_document_are_found_when_first_asked_and_match_the_eager_ones():
    text = ("a: 1\n---\n---\n# the empty document above is a null one\nspec:\n  columns:\n"
            "    - {columnName: A}\n    - columnName: B\n      columnType: 5\n---\nz: [x, y]\n")
    for loader in LOADERS:
        documents, problems = yaml_source._parse(text, "f.yaml", loader)
        assert problems == [] and [d.data for d in documents] == [
            {"a": 1}, None, {"spec": {"columns": [{"columnName": "A"}, {"columnName": "B", "columnType": 5}]}},
            {"z": ["x", "y"]}]
        assert all(d.known_lines is None for d in documents)          # nothing recorded while reading
        second, third = documents[2], documents[3]
        assert second.line_of(("spec", "columns", 1, "columnType")) == 9
        assert second.line_of(("spec", "columns", 0, "columnName")) == 7
        assert third.line_of(("z", 1)) == 11 and documents[0].line_of(("a",)) == 1
        eager, _ = yaml_source._parse(text, "f.yaml", loader, one_pass=False)
        assert [d.lines for d in documents] == [d.lines for d in eager]


def test_a_document_with_a_problem_of_its_own_records_its_lines_as_it_is_read():
    [document], problems = yaml_source._parse("a: 1\nb: 2\na: 3\n", "f.yaml", LOADERS[-1])
    assert [(p.line, p.field, p.message) for p in problems] == [(3, "a", "duplicate key")]
    assert document.known_lines is not None and document.data == {"a": 3, "b": 2}
