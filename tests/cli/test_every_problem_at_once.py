"""`validate` and `plan` report every problem in one run (issue 13, point 6).

A document with a bad field is not dropped: its address still exists (a view of it is checked
against it, not told its source is unknown), its valid fields are checked, and its invalid
ones bring no follow-up noise. Unknown names get a "did you mean" when one is close.
"""

from __future__ import annotations

import textwrap

import pytest

DATASET = """\
apiVersion: qrvey-iac/v1
kind: Dataset
metadata: {{name: {name}{depends}}}
spec:
  app: {app}
  name: {name}
  shared: {shared}
  datasources:
    - {{name: Main, connectionId: "{connection}", connectorType: MSSQL_LIVE, tableName: t}}
  columns:
    - {{columnName: Id, columnType: NUMBER}}
    - {{columnName: Total, {total_type}: NUMBER}}
"""
VIEW = """\
apiVersion: qrvey-iac/v1
kind: DatasetView
metadata: {{name: {name}}}
spec:
  app: emea
  source: {source}
  name: {name}
  columns:
    - {{{column}, columnName: Shown}}
"""


def dataset(name, app="sales", shared="true", connection="c1", total_type="columnType", depends=""):
    return DATASET.format(name=name, app=app, shared=shared, connection=connection, total_type=total_type,
                          depends=f", dependsOn: [{depends}]" if depends else "")


def view(name, source, column="column: Total"):
    return VIEW.format(name=name, source=source, column=column)


def write(project, *documents: str) -> None:
    for path in project.root.joinpath("manifests").iterdir():
        path.unlink()
    project.manifest("all.yaml").write_text("---\n".join(documents))


def problems(project, *args):
    result = project.run(*(args or ("validate",)))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert not project.state_path.exists() and not project.world_path.exists()
    lines = result.stderr.splitlines()
    noun = "problem" if len(lines) == 2 else "problems"
    assert lines[-1] == f"{len(lines) - 1} {noun} found; nothing was changed."
    return lines[:-1]


def line_of(project, text: str, nth: int = 1) -> int:
    lines = project.manifest("all.yaml").read_text().splitlines()
    found = [number for number, line in enumerate(lines, 1) if text in line]
    return found[nth - 1]


EVERY_KIND = [
    # the new user's first document: one bad field, not shared
    dataset("orders", shared="false", total_type="columnTyp"),
    # a view of it: the source is not shared and it renames a column the source lacks
    view("orders-emea", "dataset.orders", column="column: Totl"),
    # an unknown app and an unknown variable, each one letter off
    dataset("customers", app="salse", connection="${var.warehouse_conection}"),
    # a reference one letter off
    view("customers-emea", "dataset.custmers"),
    # a cycle, and a duplicate address
    dataset("left", depends="dataset.right"),
    dataset("right", depends="dataset.left"),
    dataset("left"),
]


@pytest.mark.parametrize("command", [("validate",), ("plan",)])
def test_every_kind_of_problem_is_reported_in_one_run(project, command):
    write(project, *EVERY_KIND)
    lines = problems(project, *command, "--var", "warehouse_dbb=shop")
    at = lambda text, nth=1: f"Error: manifests/all.yaml:{line_of(project, text, nth)}:"   # noqa: E731
    expected = [
        "Error: --var: unknown variable 'warehouse_dbb' (did you mean 'warehouse_db'?): no manifest uses "
        "${var.warehouse_dbb} and the environment's variables do not declare it",
        f"Error: manifests/all.yaml:{line_of(project, 'metadata: {name: left') - 2}: metadata.dependsOn: "
        "dependency cycle: "
        "dataset.left -> dataset.right -> dataset.left",
        f"{at('columnTyp:')} spec.columns[1].columnType: required field is missing",
        f"{at('columnTyp:')} spec.columns[1].columnTyp: unknown field (did you mean 'columnType'?)",
        f"{at('source: dataset.orders')} spec.source: dataset.orders is not shared: set shared: true on it "
        "to use it as a view's source",
        f"{at('column: Totl')} spec.columns[0].column: dataset.orders has no column 'Totl' (did you mean 'Total'?) "
        "(its columns: Id, Total)",
        f"{at('app: salse')} spec.app: unknown app 'salse' (did you mean 'sales'?) "
        "(apps of this environment: apac, emea, sales)",
        f"{at('warehouse_conection')} spec.datasources[0].connectionId: unknown variable 'warehouse_conection' "
        "(did you mean 'warehouse_connection'?) (known: crm_connection, warehouse_connection, warehouse_db, warehouse_dbb)",
        f"{at('source: dataset.custmers')} spec.source: unknown reference dataset.custmers "
        "(did you mean 'dataset.customers'?)",
        f"{at('metadata: {name: left', 2)} metadata.name: duplicate address dataset.left "
        f"(first defined at manifests/all.yaml:{line_of(project, 'metadata: {name: left') - 2})",
    ]
    assert sorted(lines) == sorted(expected)
    assert len(lines) == len(set(lines))
    # in file order (the --var line, which has no file line, first)
    numbers = [int(line.split(":")[2]) for line in lines[1:]]
    assert numbers == sorted(numbers)


def test_a_view_of_a_document_with_a_bad_field_is_not_told_its_source_is_unknown(project):
    write(project, dataset("orders", total_type="columnTyp"), view("orders-emea", "dataset.orders"))
    lines = problems(project)
    assert not any("unknown reference" in line for line in lines), lines
    assert [line.split(": ", 2)[2].split(":")[0] for line in lines] == [
        "spec.columns[1].columnType", "spec.columns[1].columnTyp"]


NO_FOLLOW_UP = {   # a field already reported brings no second problem in the checks between documents
    "the source's share flag": (
        [dataset("orders", shared="[yes]"), view("v", "dataset.orders")],
        ["spec.shared: expected true or false, got list"]),
    "the source's columns": (
        [dataset("orders").replace("    - {columnName: Total, columnType: NUMBER}\n", "    - 7\n"),
         view("v", "dataset.orders", column="column: Totl")],
        ["spec.columns[1]: expected a mapping, got 7"]),
    "a source column's name": (
        [dataset("orders").replace("columnName: Total", "columnName: [Total]"),
         view("v", "dataset.orders", column="column: Total")],
        ["spec.columns[1].columnName: expected a string, got list"]),
    "the view's source": (
        [view("v", "7")],
        ["spec.source: expected a string, got 7"]),
    "the view's own override": (
        [dataset("orders"), view("v", "dataset.orders", column="colum: Totl")],
        ["spec.columns[0].column: required field is missing",
         "spec.columns[0].colum: unknown field (did you mean 'column'?)"]),
    "the app": (
        [dataset("orders", app="[sales]")],
        ["spec.app: expected a string, got list"]),
    "an unset variable in the app": (
        [dataset("orders", app="${var.nope}")],
        ["spec.app: unknown variable 'nope' (known: crm_connection, warehouse_connection, warehouse_db)"]),
    "an unset variable where a reference goes": (
        [view("v", "'${var.nope}'")],
        ["spec.source: unknown variable 'nope' (known: "]),
    "a reference in dependsOn": (
        [dataset("orders", depends="Dataset.x")],
        ["metadata.dependsOn[0]: 'Dataset.x' does not match the pattern"]),
}


@pytest.mark.parametrize("case", sorted(NO_FOLLOW_UP))
def test_a_field_already_reported_brings_no_follow_up_problem(project, case):
    documents, expected = NO_FOLLOW_UP[case]
    write(project, *documents)
    result = project.run("validate")
    assert result.exit_code == 1
    lines = [line.split(": ", 2)[2] for line in result.stderr.splitlines()[:-1]]
    assert len(lines) == len(expected), lines
    for line, start in zip(lines, expected):
        assert line.startswith(start), (line, start)


def test_a_salvaged_document_still_checks_its_own_valid_references_and_app(project):
    write(project, dataset("orders", app="emae", total_type="columnTyp", depends="dataset.nowhere"))
    lines = [line.split(": ", 2)[2] for line in problems(project)]
    assert "spec.app: unknown app 'emae' (did you mean 'emea'?) (apps of this environment: apac, emea, sales)" in lines
    assert "metadata.dependsOn[0]: unknown reference dataset.nowhere" in lines


def test_an_environment_override_that_shares_a_document_with_a_bad_field_counts(project):
    config = project.root / "qrvey-iac.yaml"
    config.write_text(config.read_text().replace(
        "      warehouse_db: shop\n  # A real", "      warehouse_db: shop\n    overrides: {dataset.orders: {shared: true}}\n  # A real"))
    write(project, dataset("orders", shared="false", total_type="columnTyp"), view("v", "dataset.orders"))
    lines = problems(project)
    assert not any("not shared" in line or "unknown reference" in line for line in lines), lines
    assert len(lines) == 2          # the document's own two problems


def test_unknown_fields_and_kinds_get_a_suggestion_when_one_is_close(project):
    write(project, dataset("orders").replace("  shared: true", "  shard: true").replace(
        "metadata: {name: orders}", "metadata: {name: orders, dependOn: []}"),
        view("v", "dataset.orders").replace("kind: DatasetView", "kind: DataSetView"))
    lines = [line.split(": ", 2)[2] for line in problems(project)]
    assert lines == [
        "metadata.dependOn: unknown field (did you mean 'dependsOn'?)",
        "spec.shard: unknown field (did you mean 'shared'?)",
        "kind: unknown kind 'DataSetView' (expected 'Connection', 'Dataset', 'DatasetView', 'Moved', 'Removed') (did you mean 'DatasetView'?)",
    ]


def test_an_unknown_field_far_from_any_gets_no_suggestion(project):
    write(project, dataset("orders") + "  colour: red\n")
    assert [line.split(": ", 2)[2] for line in problems(project)] == ["spec.colour: unknown field"]


def test_an_unknown_address_on_the_command_line_gets_a_suggestion(project):
    result = project.run("plan", "--target", "dataset.ordres")
    assert result.exit_code == 1
    assert "Error: unknown address dataset.ordres (did you mean 'dataset.orders'?)" in result.stderr
    assert project.run("apply", "--auto-approve").exit_code == 0
    result = project.run("state", "show", "view.orders-emae")
    assert result.exit_code == 1
    assert "Error: view.orders-emae is not in the state (did you mean 'view.orders-emea'?)" in result.stderr
    result = project.run("state", "show", "view.elsewhere")
    assert "is not in the state (see `qrvey-iac state list`)" in result.stderr     # nothing close: no guess


def test_an_unknown_key_of_the_config_gets_a_suggestion(project):
    config = project.root / "qrvey-iac.yaml"
    config.write_text(config.read_text().replace("defaultEnvironment:", "defaultEnviroment:").replace(
        "    apiKeyEnv: QRVEY_API_KEY", "    apiKeyEnvv: QRVEY_API_KEY"))
    result = project.run("validate")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert "Error: qrvey-iac.yaml:3: defaultEnviroment: unknown field (did you mean 'defaultEnvironment'?)" in lines
    assert any(line.endswith("environments.prod.apiKeyEnvv: unknown field (did you mean 'apiKeyEnv'?)")
               for line in lines), lines
