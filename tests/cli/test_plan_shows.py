"""Plans show what will exist, from real runs against the emulator: every field a create sends
(secrets masked), a datasource rename field by field, what removing a view's column override
does in Qrvey."""

import json

DB_SECRET = "crm_db_Zq7secret"


def applied(project):
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    return result


def test_a_create_plan_lists_datasources_and_column_settings_with_secrets_masked(project, monkeypatch):
    monkeypatch.setenv("QI_DB", DB_SECRET)
    project.replace_in("sales.yaml", "      database: crm\n", "      database: ${env:QI_DB}\n")
    result = project.run("plan")
    assert result.exit_code == 0, result.output
    customers = result.stdout.split("# dataset.customers will be created (new in the manifests)\n")[1].split("\n\n")[0]
    rows = [("app", "sales"), ("name", '"Customers"'), ("datasources.Customers.connectionId", '"conn-crm"'),
            ("datasources.Customers.connectorType", '"MYSQL_LIVE"'),
            ("datasources.Customers.database", '"(sensitive)"'), ("datasources.Customers.tableName", '"customers"'),
            ("columns.CustomerId.columnType", '"NUMBER"'), ("columns.Name.columnType", '"STRING"'),
            ("columns.Country.columnType", '"STRING"'), ("columns.Segment.columnType", '"STRING"'),
            ("columns.Email.columnType", '"STRING"'), ("columns.Email.visible", "false")]
    assert customers.splitlines()[1:] == [f"      {label:<35} = {value}" for label, value in rows]
    view = result.stdout.split("# view.orders-emea will be created (new in the manifests)\n")[1].split("\n\n")[0]
    assert '      columns.Total.columnName = "Order total"' in view.splitlines()
    orders = result.stdout.split("# dataset.orders will be created")[1].split("\n\n")[0]
    assert '      customAttributes.team            = "revenue-analytics"' in orders.splitlines()
    markdown = project.run("plan", "--format", "markdown")
    assert "| <code>columns.Email.visible</code> | <code>false</code> |" in markdown.stdout
    for output in (result.output, markdown.output, project.run("plan", "--format", "json").output):
        assert DB_SECRET not in output


def test_a_datasource_rename_is_diffed_per_field(project):
    applied(project)
    project.replace_in("sales.yaml", "    - name: Orders\n", "    - name: OrdersTable\n")
    project.replace_in("sales.yaml", "      tableName: orders\n", "      tableName: orders_v2\n")
    result = project.run("plan")
    assert result.exit_code == 0, result.output
    assert ("  # dataset.orders will be updated in place (changed in the manifests)\n"
            f"  ~ dataset.orders [id={project.dataset_id('dataset.orders')}]\n"
            '      ~ datasources.OrdersTable.name: "Orders" → "OrdersTable"\n'
            '      ~ datasources.OrdersTable.tableName: "orders" → "orders_v2"\n') in result.stdout
    plan = json.loads(project.run("plan", "--format", "json").stdout)
    (orders,) = [a for a in plan["actions"] if a["address"] == "dataset.orders"]
    assert [(c["path"], c["before"], c["after"]) for c in orders["changes"]] == [
        ("datasources.OrdersTable.name", "Orders", "OrdersTable"),
        ("datasources.OrdersTable.tableName", "orders", "orders_v2"),
    ]
    applied(project)
    (source,) = project.world()["datasets"][project.dataset_id("dataset.orders")]["datasources"]
    assert (source["name"], source["tableName"]) == ("OrdersTable", "orders_v2")
    assert "No changes." in project.run("plan").stdout


def test_removing_a_view_column_override_says_what_qrvey_will_show(project):
    applied(project)
    view_id = project.dataset_id("view.orders-emea")
    override = "  columns:\n    - {column: Total, columnName: Order total}\n"
    project.replace_in("regions.yaml", "  name: Orders (EMEA)\n" + override, "  name: Orders (EMEA)\n")
    result = project.run("plan")
    assert result.exit_code == 0, result.output
    assert ("  # view.orders-emea will be updated in place (changed in the manifests)\n"
            f"  ~ view.orders-emea [id={view_id}]\n"
            '      ~ columns.Total.columnName: "Order total" → "Total"\n\n') in result.stdout
    applied(project)
    columns = project.world()["datasets"][view_id]["columns"]
    assert [(c["columnName"], c.get("visible", True)) for c in columns if c["origColumnSourceName"] == "Total"] == [
        ("Total", True)]
