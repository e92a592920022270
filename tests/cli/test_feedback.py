"""What the CLI says while and after it works: the closing line of destroy, lists in natural
order, waiting for the state lock, retries summarised."""

import re

from tests.cli.test_core_loop import applied


def test_destroy_ends_with_destroy_complete(project):
    applied(project)
    result = project.run("destroy", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert result.stdout.rstrip().endswith("Destroy complete! Resources: 10 destroyed.")
    assert "Apply complete!" not in result.output


def test_apply_still_ends_with_apply_complete(project):
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "Apply complete! Resources: 10 created, 0 updated, 0 replaced, 0 destroyed, 2 shared." in result.stdout
    assert "Destroy complete!" not in result.output


def numbered_datasets(project, numbers):
    documents = []
    for n in numbers:
        documents.append(
            "apiVersion: qrvey-iac/v1\nkind: Dataset\n"
            f"metadata: {{name: ds-{n}}}\n"
            "spec:\n  app: sales\n"
            f"  name: DS {n}\n"
            "  datasources:\n"
            "    - {name: Main, connectionId: conn-warehouse, connectorType: MSSQL_LIVE, database: shop, "
            f"tableName: t{n}}}\n"
            "  columns:\n    - {columnName: Total, columnType: NUMBER}\n")
    project.manifest("numbered.yaml").write_text("---\n".join(documents))


def test_state_list_and_plan_sort_naturally(project):
    numbered_datasets(project, [10, 2, 1, 11, 3])
    expected = [f"dataset.ds-{n}" for n in (1, 2, 3, 10, 11)]
    planned = project.run("plan")
    assert planned.exit_code == 0, planned.output
    shown = [a for a in re.findall(r"# (\S+) will be created", planned.stdout) if a.startswith("dataset.ds-")]
    assert shown == expected
    assert project.run("apply", "--auto-approve").exit_code == 0
    listed = project.run("state", "list")
    assert listed.exit_code == 0, listed.output
    addresses = [line.split("\t")[0] for line in listed.stdout.splitlines()]
    assert [a for a in addresses if a.startswith("dataset.ds-")] == expected
