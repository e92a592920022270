"""Hostile input, generated: every bad manifest, config or plan file is refused with exit 1
and precise ``Error:`` lines, never a traceback, and nothing is written.

About 1,400 generated inputs per default run (``max_examples`` below), through the
in-process CLI (validate / plan / apply) and straight into the loaders.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from qrvey_iac.adapters.config import read_config
from qrvey_iac.adapters.manifest_files import load_manifest
from qrvey_iac.adapters.plan_file import load_plan
from qrvey_iac.adapters.state.local import LocalStateStore
from qrvey_iac.adapters.variables import merge_variables
from qrvey_iac.adapters.yaml_source import MAX_FILE_BYTES, parse_documents
from qrvey_iac.cli import cli
from qrvey_iac.core.errors import ConfigError, ManifestError, PlanError, StateError
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.kinds.base import NAME_PATTERN

REPO = Path(__file__).resolve().parents[2]


def budget(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])
SUMMARY = re.compile(r"^\d+ problems? found; nothing was changed\.$")

VALID = {
    "apiVersion": "qrvey-iac/v1",
    "kind": "Dataset",
    "metadata": {"name": "orders"},
    "spec": {
        "app": "sales", "name": "Orders", "shared": True,
        "datasources": [{"name": "Orders", "connectionId": "c1", "connectorType": "MSSQL_LIVE",
                         "tableName": "orders"}],
        "columns": [{"columnName": "Id", "columnType": "NUMBER", "visible": True}],
        "customAttributes": {"team": "x"},
    },
}
VALID_TEXT = yaml.safe_dump(VALID, sort_keys=False)
FLOW_TEXT = VALID_TEXT.split("  columns:")[0] + "  columns:\n  - {columnName: Id, columnType: NUMBER, visible: true}\n"
KNOWN = {
    (): {"apiVersion", "kind", "metadata", "spec"},
    ("metadata",): {"name", "dependsOn"},
    ("spec",): {"app", "name", "shared", "protect", "datasources", "columns", "dataSync", "customAttributes"},
    ("spec", "datasources", 0): {"name", "connectionId", "connectorType", "database", "tableName", "query",
                                 "datasourceId"},
    ("spec", "columns", 0): {"columnName", "columnType", "origColumnType", "origColumnSourceName", "visible",
                             "accessRoles"},
}
PYDANTIC_BOOLS = {"0", "1", "true", "false", "yes", "no", "on", "off", "t", "f", "y", "n"}


class Workspace:
    """One project folder reused by every example: a valid config and one manifest file."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="qi-hostile-"))
        shutil.copy(REPO / "qrvey-iac.yaml", self.root / "qrvey-iac.yaml")
        (self.root / "manifests").mkdir()
        self.config = self.root / "qrvey-iac.yaml"
        self.good_config = self.config.read_bytes()
        self.manifest = self.root / "manifests" / "bad.yaml"

    def reset(self, manifest: bytes | str = VALID_TEXT) -> None:
        self.config.write_bytes(self.good_config)
        for path in (self.root / "manifests").iterdir():
            path.unlink()
        data = manifest.encode() if isinstance(manifest, str) else manifest
        self.manifest.write_bytes(data)
        shutil.rmtree(self.root / "state", ignore_errors=True)

    def run(self, *args: str):
        return CliRunner().invoke(cli, [*args, "--config", str(self.config)])


@pytest.fixture(scope="module")
def workspace():
    workspace = Workspace()
    yield workspace
    shutil.rmtree(workspace.root, ignore_errors=True)


def refused(workspace: Workspace, command: tuple[str, ...], names: str) -> list[str]:
    """Exit 1, only ``Error:`` lines (and the count), the first naming ``names``; no write."""
    result = workspace.run(*command)
    assert result.exit_code == 1, (result.exit_code, result.output[-2000:])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.output and "internal error" not in result.stderr, result.stderr[-2000:]
    assert lines and lines[0].startswith(f"Error: {names}"), lines[:3]
    assert all(line.startswith(("Error: ", "  ")) or SUMMARY.match(line) for line in lines), lines[:5]
    assert not (workspace.root / "state").exists(), "a refused command wrote state or the emulator world"
    return lines


COMMANDS = st.sampled_from([("validate",), ("plan",), ("apply", "--auto-approve"), ("destroy", "--auto-approve")])
MANIFEST_COMMANDS = st.sampled_from([("validate",), ("plan",), ("apply", "--auto-approve")])


def set_path(document: dict, path: tuple, value) -> dict:
    document = json.loads(json.dumps(document))
    target = document
    for part in path[:-1]:
        target = target.setdefault(part, {}) if isinstance(target, dict) else target[part]
    target[path[-1]] = value
    return document


def dump(document) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def test_the_base_document_is_valid(workspace):
    workspace.reset()
    assert workspace.run("validate").exit_code == 0


# -- wrong types -------------------------------------------------------------

SCALARS = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
                    st.text(max_size=20), st.dates())
NON_STRINGS = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(), st.dates(),
                        st.lists(SCALARS, max_size=3), st.dictionaries(st.text(max_size=5), SCALARS, max_size=3))
NOT_BOOLS = st.one_of(
    st.integers().filter(lambda n: n not in (0, 1)), st.floats(allow_nan=False).filter(lambda f: f not in (0, 1)),
    st.text(max_size=10).filter(lambda t: t.strip().lower() not in PYDANTIC_BOOLS),
    st.lists(SCALARS, max_size=3), st.dictionaries(st.text(max_size=5), SCALARS, max_size=3), st.dates())
NOT_LISTS = st.one_of(st.integers(), st.text(max_size=10), st.booleans(), st.none(), st.just([]),
                      st.dictionaries(st.text(max_size=5), SCALARS, max_size=3))
NOT_MAPPINGS = st.one_of(st.integers(), st.text(max_size=10), st.booleans(), st.lists(SCALARS, max_size=3))
STRING_FIELDS = [("spec", "app"), ("spec", "name"), ("spec", "datasources", 0, "name"),
                 ("spec", "datasources", 0, "connectionId"), ("spec", "datasources", 0, "connectorType"),
                 ("spec", "columns", 0, "columnName"), ("spec", "columns", 0, "columnType")]
WRONG_TYPES = st.one_of(
    st.tuples(st.sampled_from(STRING_FIELDS), st.one_of(NON_STRINGS, st.just(""))),
    st.tuples(st.just(("metadata", "name")),
              st.one_of(NON_STRINGS, st.text(max_size=70).filter(lambda t: not re.fullmatch(NAME_PATTERN, t)))),
    st.tuples(st.sampled_from([("spec", "shared"), ("spec", "protect")]), st.one_of(NOT_BOOLS, st.none())),
    st.tuples(st.just(("spec", "columns", 0, "visible")), NOT_BOOLS),
    st.tuples(st.sampled_from([("spec", "datasources"), ("spec", "columns")]), NOT_LISTS),
    st.tuples(st.sampled_from([("spec", "customAttributes"), ("spec", "dataSync"), ("spec",), ("metadata",)]),
              NOT_MAPPINGS),
    st.tuples(st.just(("apiVersion",)), st.one_of(NON_STRINGS, st.text(max_size=20).filter(lambda t: t != "qrvey-iac/v1"))),
    st.tuples(st.just(("kind",)),
              st.one_of(NON_STRINGS, st.text(max_size=20).filter(lambda t: t not in ("Dataset", "DatasetView")))),
    st.tuples(st.just(("spec", "app")), st.text(min_size=1, max_size=20).filter(lambda t: t not in ("sales", "emea", "apac"))),
)


@budget(250)
@given(WRONG_TYPES, MANIFEST_COMMANDS)
def test_wrong_types_and_values_name_file_line_and_field(workspace, case, command):
    path, value = case
    workspace.reset(dump(set_path(VALID, path, value)))
    refused(workspace, command, f"{workspace.manifest}:")


# -- unknown fields ------------------------------------------------------------

@budget(150)
@given(st.sampled_from(sorted(KNOWN)), st.text(max_size=15), SCALARS, MANIFEST_COMMANDS)
def test_unknown_fields_are_named(workspace, where, key, value, command):
    if key in KNOWN[where] or key == "<<":
        key = f"x-{key}-unknown"
    workspace.reset(dump(set_path(VALID, (*where, key), value)))
    lines = refused(workspace, command, f"{workspace.manifest}:")
    # a key close to a known one also gets "(did you mean 'datasources'?)" (adapters/validation.py)
    assert any(re.search(r": unknown field( \(did you mean '[^']+'\?\))?$", line) for line in lines), lines


# -- malformed YAML ------------------------------------------------------------

PLAIN = st.text(st.characters(blacklist_characters='"\\', blacklist_categories=("Cs", "Cc")), max_size=20)
CONTROL = st.sampled_from([chr(c) for c in [*range(0, 9), 11, 12, *range(14, 32), 127]])


@st.composite
def malformed_yaml(draw) -> str:
    lines = VALID_TEXT.splitlines(keepends=True)
    kind = draw(st.sampled_from(["quote", "tab", "control", "flow", "duplicate", "bracket"]))
    if kind == "quote":           # a double quote never closed: the scalar runs into the end of the stream
        index = draw(st.sampled_from([i for i, line in enumerate(lines) if re.search(r": \S", line)]))
        key, _, value = lines[index].partition(": ")
        lines[index] = f'{key}: "{draw(PLAIN)}{value}'
        return "".join(lines)
    if kind == "tab":             # a tab where indentation is expected
        index = draw(st.sampled_from([i for i, line in enumerate(lines) if line.startswith("  ")]))
        lines[index] = "\t" + lines[index][2:]
        return "".join(lines)
    if kind == "control":         # a character YAML does not allow in a stream
        position = draw(st.integers(0, len(VALID_TEXT)))
        return VALID_TEXT[:position] + draw(CONTROL) + VALID_TEXT[position:]
    if kind == "flow":            # cut inside the last flow mapping
        start = FLOW_TEXT.rindex("{") + 1
        return FLOW_TEXT[: draw(st.integers(start, FLOW_TEXT.rindex("}") - 1))]
    if kind == "duplicate":       # the same key twice in one mapping
        index = draw(st.sampled_from([i for i, line in enumerate(lines) if re.match(r"(  )?\w+: \S", line)]))
        lines.insert(index + 1, lines[index])
        return "".join(lines)
    return VALID_TEXT + f"extra: [{draw(PLAIN.filter(lambda t: ']' not in t))}"   # a flow sequence never closed


@budget(200)
@given(malformed_yaml(), MANIFEST_COMMANDS)
def test_malformed_yaml_is_one_precise_line(workspace, text, command):
    workspace.reset(text)
    lines = refused(workspace, command, f"{workspace.manifest}:")
    assert re.match(r"^Error: \S*bad\.yaml:\d+: (\S+: )?(invalid YAML|duplicate key)", lines[0]), lines
    assert len(lines) == 2, lines             # one problem, on one line, and the count


# -- bytes that are not UTF-8 ---------------------------------------------------

@budget(80)
@given(st.integers(0, len(VALID_TEXT)),
       st.sampled_from([b"\xff", b"\xfe", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf5\x80\x80\x80", b"\xc3"]),
       MANIFEST_COMMANDS)
def test_non_utf8_bytes_name_the_byte(workspace, position, bad, command):
    data = VALID_TEXT.encode()
    workspace.reset(data[:position] + bad + data[position:])
    lines = refused(workspace, command, f"{workspace.manifest}:")
    assert re.match(rf"^Error: \S*bad\.yaml: not valid UTF-8 \(byte {position}\)$", lines[0]), lines


# -- nesting, aliases and size ---------------------------------------------------

NESTERS = {
    "flow lists": lambda n: "[" * n + "]" * n,
    "flow mappings": lambda n: "{a: " * n + "}" * n,
    "compact sequences": lambda n: "- " * n + "x",
    "block mappings": lambda n: "".join("  " * i + "a:\n" for i in range(min(n, 1500))) + "  " * min(n, 1500) + "b: 1\n",
    "in a manifest": lambda n: VALID_TEXT.replace("  customAttributes:\n    team: x\n",
                                                 "  customAttributes:\n    a: " + "[" * n + "]" * n + "\n"),
}


@budget(60)
@given(st.sampled_from(sorted(NESTERS)), st.integers(101, 400_000), MANIFEST_COMMANDS)
@example("flow lists", 100_000, ("validate",))        # crashed libyaml's C composer (SIGSEGV)
@example("compact sequences", 200_000, ("plan",))
def test_deep_nesting_is_refused_not_a_crash(workspace, shape, depth, command):
    workspace.reset(NESTERS[shape](depth))
    lines = refused(workspace, command, f"{workspace.manifest}:")
    assert re.match(r"^Error: \S*bad\.yaml:\d+: invalid YAML: nested more than 100 levels deep$", lines[0]), lines


@budget(30)
@given(st.integers(2, 30), st.integers(2, 12), MANIFEST_COMMANDS)
@example(9, 10, ("validate",))       # 9^10 nodes from 400 bytes: hung the loader for hours
def test_alias_bombs_are_refused_at_once(workspace, width, levels, command):
    lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    workspace.reset("\n".join(lines) + "\n")
    lines = refused(workspace, command, f"{workspace.manifest}:")
    if width ** levels > 100_000:
        assert re.match(r"^Error: \S*bad\.yaml:1: invalid YAML: its aliases expand \d+ nodes to \d+$", lines[0])


@pytest.mark.parametrize("text, line", [("a: &a [*a]\n", 1), (VALID_TEXT + "dataSync: &s {x: [1, *s]}\n", 20)])
def test_an_alias_inside_its_own_anchor_is_refused(workspace, text, line):
    workspace.reset(text)
    refused(workspace, ("validate",), f"{workspace.manifest}:{line}: invalid YAML: an alias refers to a node ")


@budget(3)
@given(st.integers(MAX_FILE_BYTES + 1, MAX_FILE_BYTES + 100_000))
def test_huge_files_are_refused_before_reading_them(workspace, size):
    workspace.reset(VALID_TEXT + "#" * (size - len(VALID_TEXT)))
    lines = refused(workspace, ("validate",), f"{workspace.manifest}:")
    assert lines[0].endswith(f"bad.yaml: file is {size} bytes; the limit is {MAX_FILE_BYTES}"), lines


# -- truncated and damaged plan files ---------------------------------------------

@pytest.fixture(scope="module")
def plan_text(workspace) -> str:
    workspace.reset()
    result = workspace.run("plan", "--out", str(workspace.root / "saved-plan.json"))
    assert result.exit_code == 0, result.output
    shutil.rmtree(workspace.root / "state", ignore_errors=True)
    return (workspace.root / "saved-plan.json").read_text()


LETTERS = st.text(st.characters(whitelist_categories=("Ll", "Lu")), min_size=1, max_size=8).filter(
    lambda t: t.lower() not in PYDANTIC_BOOLS)
SOME = st.lists(st.integers(), min_size=1, max_size=3)
WRONG = {   # values no field of that type accepts
    "str": st.one_of(st.integers(), st.floats(allow_nan=False), SOME, st.dictionaries(LETTERS, st.integers(), min_size=1)),
    "int": st.one_of(LETTERS, SOME, st.floats(allow_nan=False).filter(lambda f: not f.is_integer())),
    "bool": st.one_of(LETTERS, SOME, st.integers().filter(lambda n: n not in (0, 1))),
    "list": st.one_of(LETTERS, st.integers(), SOME, st.dictionaries(LETTERS, st.integers(), min_size=1)),
    "dict": st.one_of(LETTERS, st.integers(), SOME),
    "model": st.one_of(LETTERS, st.integers(), SOME, st.dictionaries(LETTERS, st.integers(), min_size=1)),
}
PLAN_FIELDS = {"format_version": "int", "actions": "list", "environment": "str", "lineage": "str", "serial": "int",
               "fingerprints": "dict", "refresh_only": "bool"}
ACTION_FIELDS = {"op": "str", "address": "str", "kind": "str", "changes": "list", "desired": "dict", "app": "model"}


@st.composite
def damaged_plan(draw, plan_text: str) -> str:
    plan = json.loads(plan_text)
    how = draw(st.sampled_from(["truncate", "field", "action field", "top"]))
    if how == "truncate":
        return plan_text[: draw(st.integers(0, len(plan_text) - 3))]
    if how == "top":
        return draw(st.sampled_from(["[]", "null", "42", '"plan"', "{}", '{"format_version": 9}', "[" * 5_000]))
    if how == "field":
        name = draw(st.sampled_from(sorted(PLAN_FIELDS)))
        return json.dumps({**plan, name: draw(WRONG[PLAN_FIELDS[name]])})
    name = draw(st.sampled_from(sorted(ACTION_FIELDS)))
    action = {**plan["actions"][0], name: draw(WRONG[ACTION_FIELDS[name]])}
    return json.dumps({**plan, "actions": [action, *plan["actions"][1:]]})


@budget(120)
@given(st.data())
def test_a_damaged_plan_file_is_refused_naming_it(workspace, plan_text, data):
    text = data.draw(damaged_plan(plan_text))
    workspace.reset()
    (workspace.root / "damaged.json").write_text(text)
    refused(workspace, ("apply", str(workspace.root / "damaged.json")), f"plan file {workspace.root / 'damaged.json'} ")


# -- bad configs -------------------------------------------------------------------

CONFIG_FIELDS = [
    (("environments", "local", "endpoint"), st.one_of(NON_STRINGS, st.text(max_size=20).filter(
        lambda t: t.rstrip("/") != "local" and not t.startswith(("http://", "https://"))))),
    (("environments", "local", "apps"), st.one_of(NOT_MAPPINGS, st.just({}))),
    (("environments", "local", "apps", "sales"), NOT_MAPPINGS),
    (("environments", "local", "apps", "sales", "userId"), st.one_of(NON_STRINGS, st.just(""))),
    (("environments", "local", "state"), NOT_MAPPINGS),
    (("environments", "local", "state", "path"), WRONG["str"]),
    (("environments", "local", "parallelism"), st.one_of(st.integers().filter(lambda n: not 1 <= n <= 256), LETTERS)),
    (("environments", "local", "variables"), NOT_MAPPINGS),
    (("environments", "local", "routes"), NOT_MAPPINGS),
    (("environments", "prod", "endpoint"), st.builds(
        "https://{}{}".format, st.sampled_from(["abcde.qrveyapp.com", "", "a..b", "u:p@", "[::zz]", "h$x"]),
        st.sampled_from([":99999", ":0", ":", ":-1", ":http", "/a/../b", "//x", "?q=1", "#f", " x"]))),
    (("environments", "local", "callDeadline"), st.one_of(st.floats(max_value=0), st.floats(min_value=3601), LETTERS)),
    (("environments", "local", "maxAnswerMiB"), st.one_of(st.integers(max_value=0), st.integers(min_value=4097))),
    (("environments",), st.one_of(NOT_MAPPINGS, st.just({}))),
    (("defaultEnvironment",), st.text(min_size=1, max_size=10).filter(lambda t: t not in ("local", "prod"))),
    (("manifests",), st.one_of(st.integers(), st.lists(SCALARS, min_size=1, max_size=2))),
]


@st.composite
def bad_config(draw) -> bytes:
    config = yaml.safe_load((REPO / "qrvey-iac.yaml").read_text())
    kind = draw(st.sampled_from(["field", "unknown key", "yaml", "bytes"]))
    if kind == "field":
        index = draw(st.integers(0, len(CONFIG_FIELDS) - 1))
        path, values = CONFIG_FIELDS[index]
        return dump(set_path(config, path, draw(values))).encode()
    if kind == "unknown key":
        where = draw(st.sampled_from([(), ("environments", "local"), ("environments", "local", "apps", "sales"),
                                      ("environments", "local", "state")]))
        key = draw(st.text(min_size=1, max_size=10))
        key = key if key not in {"manifests", "defaultEnvironment", "environments", "endpoint", "apps", "userId",
                                 "appId", "state", "path", "backend", "variables", "apiKeyEnv", "routes",
                                 "callDeadline", "maxAnswerMiB",
                                 "parallelism", "overrides", "<<"} else key + "-x"
        return dump(set_path(config, (*where, key), draw(SCALARS))).encode()
    if kind == "yaml":
        return (dump(config) + f"extra: [{draw(PLAIN.filter(lambda t: ']' not in t))}").encode()
    text = dump(config).encode()
    position = draw(st.integers(0, len(text)))
    return text[:position] + b"\xff" + text[position:]


@budget(200)
@given(bad_config(), COMMANDS)
def test_a_bad_config_is_refused_naming_it(workspace, data, command):
    workspace.reset()
    workspace.config.write_bytes(data)
    refused(workspace, command, f"{workspace.config}")


# -- straight into the loaders: anything at all ---------------------------------------

ANY_TEXT = st.one_of(st.text(max_size=300), st.text(st.sampled_from("[]{}:-?&*!|>'\"#%@`, \n\tax0"), max_size=300))


@budget(150)
@given(ANY_TEXT)
def test_parse_documents_never_raises(text):
    documents, problems = parse_documents(text, "f.yaml")
    assert all(p.file == "f.yaml" for p in problems)


@budget(150)
@given(st.one_of(ANY_TEXT.map(str.encode), st.binary(max_size=300)))
def test_every_loader_raises_only_its_own_error(workspace, data):
    folder = workspace.root / "fuzz"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "manifests").mkdir(parents=True)
    path = folder / "manifests" / "any.yaml"
    path.write_bytes(data)
    for load, errors in (
        (lambda: load_manifest(folder / "manifests", {"sales": AppRef("u", "a")}, {}, {}), ManifestError),
        (lambda: read_config(path), ConfigError),
        (lambda: merge_variables([str(path)], []), ConfigError),
        (lambda: load_plan(path), PlanError),
        (lambda: LocalStateStore(path).read(), StateError),
    ):
        try:
            load()
        except errors:
            pass
