"""Bad input: exit 1, one precise line per problem, no traceback, nothing written."""

import json
import textwrap

import pytest

DATASET = """\
apiVersion: qrvey-iac/v1
kind: Dataset
metadata:
  name: orders
spec:
  app: sales
  name: Orders
  shared: true
  datasources:
    - name: Orders
      connectionId: c1
      connectorType: MSSQL_LIVE
      tableName: orders
  columns:
    - {columnName: Id, columnType: NUMBER}
    - {columnName: Total, columnType: NUMBER}
"""


def only(project, text: str) -> None:
    for path in project.root.joinpath("manifests").iterdir():
        path.unlink()
    project.manifest("test.yaml").write_text(textwrap.dedent(text))


def errors_of(project, *args):
    result = project.run(*(args or ("validate",)))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert not project.state_path.exists()
    return [line for line in result.stderr.splitlines()]


CASES = {
    "typo in a key": (
        DATASET.replace("{columnName: Total, columnType: NUMBER}", "{columnName: Total, columnTyp: NUMBER}"),
        ["Error: manifests/test.yaml:16: spec.columns[1].columnType: required field is missing",
         "Error: manifests/test.yaml:16: spec.columns[1].columnTyp: unknown field (did you mean 'columnType'?)"],
    ),
    "wrong type": (
        DATASET.replace("shared: true", "shared: [yes]"),
        ["Error: manifests/test.yaml:8: spec.shared: expected true or false, got list"],
    ),
    "missing reference": (
        DATASET + "---\napiVersion: qrvey-iac/v1\nkind: DatasetView\nmetadata: {name: v}\n"
                  "spec:\n  app: emea\n  source: dataset.nowhere\n  name: V\n",
        ["Error: manifests/test.yaml:23: spec.source: unknown reference dataset.nowhere"],
    ),
    "view of an unshared source": (
        DATASET.replace("shared: true", "shared: false")
        + "---\napiVersion: qrvey-iac/v1\nkind: DatasetView\nmetadata: {name: v}\n"
          "spec:\n  app: emea\n  source: dataset.orders\n  name: V\n",
        ["Error: manifests/test.yaml:23: spec.source: dataset.orders is not shared: "
         "set shared: true on it to use it as a view's source"],
    ),
    "view override of a column the source lacks": (
        DATASET + "---\napiVersion: qrvey-iac/v1\nkind: DatasetView\nmetadata: {name: v}\n"
                  "spec:\n  app: emea\n  source: dataset.orders\n  name: V\n"
                  "  columns:\n    - {column: Totl, columnName: T}\n",
        ["Error: manifests/test.yaml:26: spec.columns[0].column: dataset.orders has no column 'Totl' "
         "(did you mean 'Total'?) (its columns: Id, Total)"],
    ),
    "cycle": (
        DATASET.replace("  name: orders\n", "  name: orders\n  dependsOn: [view.v]\n")
        + "---\napiVersion: qrvey-iac/v1\nkind: DatasetView\nmetadata: {name: v}\n"
          "spec:\n  app: emea\n  source: dataset.orders\n  name: V\n",
        ["Error: manifests/test.yaml:1: metadata.dependsOn: dependency cycle: "
         "dataset.orders -> view.v -> dataset.orders"],
    ),
    "invalid YAML": (
        DATASET.replace("  name: Orders\n  shared", "  name: [Orders\n  shared"),
        ["Error: manifests/test.yaml:8: invalid YAML: expected ',' or ']', but got ':'"],
    ),
    "a YAML date": (
        DATASET + "  customAttributes: {since: 2024-05-01}\n",
        ['Error: manifests/test.yaml:17: spec.customAttributes.since: 2024-05-01 is read as a YAML date, '
         'which JSON cannot carry: quote it ("2024-05-01") to keep it as text'],
    ),
    "unknown app and duplicate address": (
        DATASET.replace("app: sales", "app: marketing") + "---\n" + DATASET,
        ["Error: manifests/test.yaml:6: spec.app: unknown app 'marketing' (apps of this environment: apac, emea, sales)",
         "Error: manifests/test.yaml:21: metadata.name: duplicate address dataset.orders (first defined at manifests/test.yaml:1)"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_problem_is_one_precise_line(project, case):
    text, expected = CASES[case]
    only(project, text)
    lines = errors_of(project)
    noun = "problem" if len(expected) == 1 else "problems"
    assert lines == [*expected, f"{len(expected)} {noun} found; nothing was changed."]


@pytest.mark.parametrize("command", [("plan",), ("apply", "--auto-approve")])
def test_plan_and_apply_refuse_invalid_manifests_without_writing(project, command):
    only(project, DATASET.replace("columnType: NUMBER}\n    - {columnName: Total", "columnType: 7}\n    - {columnName: Total"))
    lines = errors_of(project, *command)
    assert lines[0] == "Error: manifests/test.yaml:15: spec.columns[0].columnType: expected a string, got 7"
    assert not project.world_path.exists()


def test_every_problem_of_every_file_is_reported_at_once(project):
    only(project, DATASET.replace("tableName: orders", "tableName: orders\n      query: select 1"))
    project.manifest("second.yaml").write_text("kind: Widget\n")
    lines = errors_of(project)
    assert lines == [
        "Error: manifests/second.yaml:1: kind: unknown kind 'Widget' (expected 'Connection', 'Dataset', 'DatasetView', 'Moved', 'Removed')",
        "Error: manifests/test.yaml:10: spec.datasources[0]: give exactly one of tableName or query",
        "2 problems found; nothing was changed.",
    ]


def test_unknown_variable_and_unset_env(project, monkeypatch):
    monkeypatch.delenv("QI_TEST_UNSET", raising=False)
    only(project, DATASET.replace("connectionId: c1", "connectionId: ${var.conn}").replace(
        "tableName: orders", "tableName: ${env:QI_TEST_UNSET}"))
    lines = errors_of(project)
    assert lines[:2] == [
        "Error: manifests/test.yaml:11: spec.datasources[0].connectionId: unknown variable 'conn' "
        "(known: crm_connection, warehouse_connection, warehouse_db)",
        "Error: manifests/test.yaml:13: spec.datasources[0].tableName: environment variable QI_TEST_UNSET is not set",
    ]


def test_bad_config_and_unknown_environment(project):
    result = project.run("validate", "--env", "staging")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        "Error: qrvey-iac.yaml: environments: unknown environment 'staging' (known: local, prod)")
    project.root.joinpath("qrvey-iac.yaml").write_text("environments:\n  local:\n    endpoint: ftp://x\n    apps: {}\n")
    lines = errors_of(project)
    assert lines[:2] == [
        "Error: qrvey-iac.yaml:3: environments.local.endpoint: expected 'local' or an http(s):// URL",
        "Error: qrvey-iac.yaml:4: environments.local.apps: must not be empty",
    ]


def test_missing_config_file(project):
    result = project.run("plan", "--config", "nope.yaml")
    assert result.exit_code == 1
    assert "Error: nope.yaml: config file not found" in result.stderr


def test_remote_endpoint_without_key(project, monkeypatch):
    monkeypatch.delenv("QRVEY_API_KEY", raising=False)
    result = project.run("plan", "--env", "prod")
    assert result.exit_code == 1
    assert "environment variable QRVEY_API_KEY is not set" in result.stderr


NOT_JSON = {   # where each reached before: apply, as "internal error: TypeError" (or ValueError) half-way
    "date": "customAttributes: {since: 2024-05-01}",
    "timestamp": "customAttributes: {at: 2024-05-01T10:00:00Z}",
    "binary": "customAttributes: {logo: !!binary aGk=}",
    "NaN": "dataSync: {ratio: .nan}",
    "infinity": "dataSync: {limit: .inf}",
    "huge integer": "dataSync: {rows: 18446744073709551616}",
}


@pytest.mark.parametrize("case", sorted(NOT_JSON))
@pytest.mark.parametrize("command", [("validate",), ("apply", "--auto-approve")])
def test_values_json_cannot_carry_are_refused_before_apply(project, case, command):
    only(project, DATASET + "  " + NOT_JSON[case] + "\n")
    lines = errors_of(project, *command)
    assert lines[0].startswith("Error: manifests/test.yaml:17: spec."), lines
    assert "which JSON cannot carry" in lines[0] or "holds exactly" in lines[0], lines
    assert lines[1:] == ["1 problem found; nothing was changed."]
    assert not project.world_path.exists()


def test_every_value_json_cannot_carry_is_reported_with_the_other_problems(project):
    only(project, DATASET.replace("shared: true", "shared: 2024-05-01")
         + "  customAttributes: {a: .nan, b: 9007199254740993}\n  colums: []\n")
    lines = errors_of(project)
    assert [line.split(": ")[1:3] for line in lines[:-1]] == [
        ["manifests/test.yaml:8", "spec.shared"],       # the date only: not also "expected true or false"
        ["manifests/test.yaml:17", "spec.customAttributes.a"], ["manifests/test.yaml:17", "spec.customAttributes.b"],
        ["manifests/test.yaml:18", "spec.colums"]]
    assert lines[-2] == "Error: manifests/test.yaml:18: spec.colums: unknown field (did you mean 'columns'?)"
    assert lines[-1] == "4 problems found; nothing was changed."


BAD_ENDPOINTS = {
    "https://abcde.qrveyapp.com:99999": "the port in 'abcde.qrveyapp.com:99999' is not a number from 1 to 65535",
    "https://abcde.qrveyapp.com:0": "the port in 'abcde.qrveyapp.com:0' is not a number from 1 to 65535",
    "https://abcde.qrveyapp.com:": "the port in 'abcde.qrveyapp.com:' is not a number from 1 to 65535",
    "https://abcde.qrveyapp.com:https": "the port in 'abcde.qrveyapp.com:https' is not a number from 1 to 65535",
    "https://": "the URL has no host",
    "https://:443": "the URL has no host",
    "https://bad..host": "the host 'bad..host' is not a valid host name or IP address",
    "https://bad$host.com": "the host 'bad$host.com' is not a valid host name or IP address",
    "https://[::zz]": "the URL cannot be read: '::zz' does not appear to be an IPv4 or IPv6 address",
    "https://1.2.3.4.5:80:80": "the port in '1.2.3.4.5:80:80' is not a number from 1 to 65535",
    "https://user:pw@abcde.qrveyapp.com:99999": "the port in 'user:pw@abcde.qrveyapp.com:99999' is not a number from 1 to 65535",
    "https://abcde.qrveyapp.com/?x=1": "the URL must not have a query (?...) or a fragment (#...)",
    "https://abcde.qrveyapp.com#top": "the URL must not have a query (?...) or a fragment (#...)",
    "https://abcde.qrveyapp.com/a/../b": "the URL's path '/a/../b' has an empty, '.' or '..' segment",
    "https://abcde.qrveyapp.com//devapi": "the URL's path '//devapi' has an empty, '.' or '..' segment",
    "https://abcde.qrvey app.com": "the URL contains spaces or control characters",
    "https:/abcde.qrveyapp.com": "expected 'local' or an http(s):// URL",
}


@pytest.mark.parametrize("endpoint", list(BAD_ENDPOINTS))
def test_a_bad_endpoint_url_is_refused_when_the_config_loads(project, monkeypatch, endpoint):
    """Before: port 99999 passed the config and failed as an internal IndexError after the
    journal was written."""
    monkeypatch.setenv("QRVEY_API_KEY", "k3y-SECRET-5f2a9c")
    config = project.root / "qrvey-iac.yaml"
    text = config.read_text()
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "abcde.qrveyapp.com" in row)
    config.write_text(text.replace("https://abcde.qrveyapp.com", json.dumps(endpoint), 1))
    for command in (("validate", "--env", "prod"), ("plan", "--env", "prod"), ("apply", "--env", "prod", "--auto-approve")):
        result = project.run(*command)
        assert result.exit_code == 1, result.output
        assert result.stderr.splitlines()[0] == (
            f"Error: qrvey-iac.yaml:{line}: environments.prod.endpoint: {BAD_ENDPOINTS[endpoint]}")
        assert "Traceback" not in result.output and "internal error" not in result.output
    assert not (project.root / "state" / "prod.json").exists()
    assert not (project.root / "state" / "prod.json.lock").exists()


@pytest.mark.parametrize("endpoint", ["https://abcde.qrveyapp.com:8443", "http://127.0.0.1:8787",
                                      "https://[::1]:8443/", "https://proxy.example/qrvey/", "https://bücher.example"])
def test_a_good_endpoint_url_loads(project, endpoint):
    config = project.root / "qrvey-iac.yaml"
    config.write_text(config.read_text().replace("https://abcde.qrveyapp.com", json.dumps(endpoint), 1))
    result = project.run("validate", "--env", "prod")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("field", "value", "message"), [
    ("callDeadline", "0", "environments.prod.callDeadline: Input should be greater than 0"),
    ("maxAnswerMiB", "0", "environments.prod.maxAnswerMiB: Input should be greater than or equal to 1"),
])
def test_the_deadline_and_the_answer_cap_are_checked(project, field, value, message):
    config = project.root / "qrvey-iac.yaml"
    config.write_text(config.read_text().replace("    apiKeyEnv: QRVEY_API_KEY\n",
                                                 f"    apiKeyEnv: QRVEY_API_KEY\n    {field}: {value}\n", 1))
    result = project.run("validate", "--env", "prod")
    assert result.exit_code == 1
    assert message in result.stderr
