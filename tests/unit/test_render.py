"""Rendered plans: text and markdown golden files, GitHub's size limit, masking, JSON round trip.

The golden files live in tests/unit/golden/. After an intended change of the output, refresh
them with an explicit flag and review the diff before committing it:

    QRVEY_IAC_UPDATE_GOLDEN=1 pytest tests/unit/test_render.py
"""

import json
import os
import re
from pathlib import Path

import pytest

from qrvey_iac.core.diff import FieldChange, canonical_hash
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.manifest import Manifest, Resource
from qrvey_iac.core.kinds.dataset import DatasetSpec
from qrvey_iac.core.kinds.view import DatasetViewSpec
from qrvey_iac.core.plan import Plan
from qrvey_iac.core.plan import make_action as plan_action
from qrvey_iac.core.planner import Live, build_plan
from qrvey_iac.core.render import MASK, render_json, render_text
from qrvey_iac.core.render_markdown import (
    COMMENT_MARKER,
    GITHUB_COMMENT_LIMIT,
    comment_marker,
    render_markdown,
)
from qrvey_iac.core.state import ResourceState, State

GOLDEN = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("QRVEY_IAC_UPDATE_GOLDEN") == "1"
SALES = AppRef("u-sales", "a-sales")
EMEA = AppRef("u-emea", "a-emea")
SECRET = "s3cr3t|<conn>"          # as if read through ${env:X}: special characters on purpose
COUNTS_HEADER = "| create | update | replace | delete | share | unshare |"


# -- a mixed plan, built by the real planner from dict literals ---------------------------------

def make_dataset(name, columns=("Total",), shared=False, app=SALES, display=None, connection="c1"):
    spec = DatasetSpec.model_validate({
        "app": "sales", "name": display or name.title(), "shared": shared,
        "datasources": [{"name": "Main", "connectionId": connection, "connectorType": "MSSQL_LIVE",
                         "database": "shop", "tableName": name}],
        "columns": [{"columnName": c, "columnType": t} for c, t in _typed(columns)],
    })
    return Resource(f"dataset.{name}", "Dataset", app, "sales", spec, ())


def make_view(name, source, columns=()):
    spec = DatasetViewSpec.model_validate({"app": "emea", "source": source, "name": name.title(),
                                           "columns": list(columns)})
    return Resource(f"view.{name}", "DatasetView", EMEA, "emea", spec, (source,))


def make_campaigns():
    """A create that sends every kind of field: a query, dataSync, customAttributes, column settings."""
    spec = DatasetSpec.model_validate({
        "app": "sales", "name": "Campaigns", "shared": True,
        "datasources": [{"name": "Main", "connectionId": SECRET, "connectorType": "MSSQL_LIVE",
                         "query": "select id, budget, owner\nfrom campaigns where active = 1"}],
        "columns": [{"columnName": "Budget", "columnType": "NUMBER", "origColumnType": "DECIMAL"},
                    {"columnName": "Owner", "columnType": "STRING", "visible": False,
                     "accessRoles": ["marketing", "finance"]}],
        "dataSync": {"type": "daily", "schedule": {"cron": "0 4 * * *"}},
        "customAttributes": {"team": "growth"},
    })
    return Resource("dataset.campaigns", "Dataset", SALES, "sales", spec, ())


def _typed(columns):
    return [c if isinstance(c, tuple) else (c, "NUMBER") for c in columns]


def make_live(resource, dataset_id, **overrides):
    spec = resource.spec
    body = {
        "datasetId": dataset_id, "appId": resource.app.app_id, "userId": resource.app.user_id,
        "isPublic": spec.shared, "name": spec.name,
        "datasources": [{**d.model_dump(exclude_none=True), "datasourceId": "ds-1"} for d in spec.datasources],
        "columns": [{"columnName": c.columnName, "columnType": c.columnType} for c in spec.columns],
        "customAttributes": {"qrveyIacAddress": resource.address},
    }
    return {**body, **overrides}


def make_recorded(resource, dataset_id):
    return ResourceState(
        kind=resource.kind, datasetId=dataset_id, appId=resource.app.app_id, userId=resource.app.user_id,
        shared=resource.spec.shared, applied_hash=canonical_hash(resource.desired),
    )


def make_mixed_plan():
    """create + share, view create, manifest update, drift update, replace, delete."""
    orders_before = make_dataset("orders", columns=[("Total", "NUMBER"), ("Placed", "DATE")])
    orders = make_dataset("orders", columns=[("Total", "NUMBER"), ("Placed", "DATETIME"), ("Channel", "STRING")])
    customers = make_dataset("customers")
    targets_before = make_dataset("targets")
    targets = make_dataset("targets", app=AppRef("u-sales", "a-forecast"))
    products = make_dataset("products")
    campaigns = make_campaigns()
    overrides = [{"column": "Budget", "columnName": "Budget (EUR)"}, {"column": "Owner", "visible": False}]
    view = make_view("campaigns-emea", "dataset.campaigns", columns=overrides)
    existing = {orders_before: "d-orders", customers: "d-customers", targets_before: "d-targets", products: "d-products"}
    state = State(lineage="5f0c3d52-0000-4000-8000-000000000001", serial=7,
                  resources={r.address: make_recorded(r, i) for r, i in existing.items()})
    live = {r.address: make_live(r, i) for r, i in existing.items()}
    live["dataset.customers"]["name"] = "Customers | <b>VIP</b> `hand-edited` *now*"
    manifest = Manifest(resources={r.address: r for r in (orders, customers, targets, campaigns, view)})
    return build_plan(manifest, state, Live(objects=live), environment="prod")


def test_mixed_plan_has_every_kind_of_action():
    plan = make_mixed_plan()
    assert [(a.op, a.address, a.drift) for a in plan.changes] == [
        ("delete", "dataset.products", False),
        ("replace", "dataset.targets", False),
        ("create", "dataset.campaigns", False),
        ("update", "dataset.customers", True),
        ("update", "dataset.orders", False),
        ("share", "dataset.campaigns", False),
        ("create", "view.campaigns-emea", False),
    ]


# -- golden files --------------------------------------------------------------------------------

def assert_golden(name, text):
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run QRVEY_IAC_UPDATE_GOLDEN=1 pytest {__file__}"
    assert text == path.read_text(encoding="utf-8")


def test_text_rendering_matches_golden_file():
    assert_golden("mixed_plan.txt", render_text(make_mixed_plan(), frozenset({SECRET})))


def test_markdown_rendering_matches_golden_file():
    assert_golden("mixed_plan.md", render_markdown(make_mixed_plan(), frozenset({SECRET})))


# -- markdown layout -----------------------------------------------------------------------------

def make_action(op, address, reason="changed in the manifests", drift=False, changes=(), **extra):
    kind = "DatasetView" if address.startswith("view.") else "Dataset"
    changes = tuple(FieldChange(path=p, before=b, after=a) for p, b, a in changes)
    return plan_action(op, address=address, kind=kind, reason=reason, drift=drift, changes=changes, **extra)


def make_plan(*actions, environment="prod"):
    return Plan(environment=environment, lineage="l-1", serial=3, actions=tuple(actions))


def section(markdown, title):
    """The lines of one summary section, from its title to the blank line that ends it."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"#### {title} ("))
    end = lines.index("", start)
    return lines[start + 1:end]


def test_markdown_starts_with_the_marker_then_counts_then_destructive_drift_rest():
    markdown = render_markdown(make_mixed_plan())
    lines = markdown.splitlines()
    assert lines[0] == "<!-- qrvey-iac plan: environment=prod -->" == comment_marker("prod")
    assert lines[0].startswith(COMMENT_MARKER)
    assert lines[1] == "### qrvey-iac plan for <code>prod</code>"
    counts = lines.index(COUNTS_HEADER)
    assert lines[counts + 2] == "| 2 | 2 | 1 | 1 | 1 | 0 |"
    order = [markdown.index(f"#### {t} (") for t in (
        "Destructive actions", "Changed outside qrvey-iac (drift)", "Changes from the manifests", "Details")]
    assert counts < lines.index("#### Destructive actions (2)") and order == sorted(order)
    assert section(markdown, "Destructive actions") == [
        "- <code>dataset.products</code> **delete**: removed from the manifests",
        "- <code>dataset.targets</code> **replace**: app changed from a-sales to a-forecast "
        "(a dataset cannot move between apps)",
    ]
    assert section(markdown, "Changed outside qrvey-iac (drift)") == [
        "- <code>dataset.customers</code> **update**: changed outside qrvey-iac · drift",
    ]
    assert [line.split("</code>")[0] for line in section(markdown, "Changes from the manifests")] == [
        "- <code>dataset.campaigns", "- <code>dataset.campaigns", "- <code>dataset.orders",
        "- <code>view.campaigns-emea",
    ]
    assert markdown.count("<details>") == markdown.count("</details>") == 6   # one per address


def test_no_changes_is_the_marker_and_one_line():
    plan = make_plan(make_action("no-op", "dataset.orders", reason="up to date"))
    lines = render_markdown(plan).splitlines()
    assert lines[0] == comment_marker("prod")
    assert lines[-1] == "No changes. Qrvey matches the manifests."
    assert "<details>" not in "\n".join(lines) and COUNTS_HEADER not in lines


def test_selection_notes_come_after_the_changes_and_without_changes_too():
    notes = ("dataset.orders pulled in: needed by a target", "view.x left out: not targeted")
    plan = make_plan(make_action("create", "view.y"), make_action("create", "dataset.orders"))
    markdown = render_markdown(plan.model_copy(update={"notes": notes}))
    assert section(markdown, "Selection (--target / --exclude)") == [f"- {n}" for n in notes]
    assert markdown.index("#### Changes from the manifests (2)") < markdown.index("#### Selection")
    quiet = render_markdown(make_plan().model_copy(update={"notes": notes[1:]}))
    assert quiet.splitlines()[3:] == [
        "No changes. Qrvey matches the manifests.", "", "#### Selection (--target / --exclude) (1)",
        "- view.x left out: not targeted",
    ]


def test_values_cannot_break_the_table_or_inject_html():
    nasty = "a|b <script>x</script> `tick` **bold** [link](http://x) $x$ ~~s~~ @team\nnext"
    plan = make_plan(make_action("update", "dataset.orders", changes=[("name", nasty, "Orders")]))
    markdown = render_markdown(plan)
    (row,) = [line for line in markdown.splitlines() if line.startswith("| <code>name</code>")]
    assert row.count("|") == 4                       # three cells: nothing split the row
    for raw in ("<script>", "`tick`", "**bold**", "[link]", "$x$", "~~s~~", "@team", "\nnext"):
        assert raw not in markdown
    assert "&lt;script&gt;" in row and "&#124;" in row


def test_an_environment_name_cannot_close_the_marker():
    assert comment_marker("x --> <b>") == "<!-- qrvey-iac plan: environment=x_--___b_ -->"


# -- masking -------------------------------------------------------------------------------------

def test_secrets_are_masked_in_markdown_even_when_escaping_would_hide_them():
    plan = make_mixed_plan()
    markdown = render_markdown(plan, frozenset({SECRET}))
    assert MASK in markdown
    escaped = SECRET.replace("|", "&#124;").replace("<", "&lt;").replace(">", "&gt;")
    assert SECRET not in markdown and escaped not in markdown and "s3cr3t" not in markdown
    assert "s3cr3t" in render_markdown(plan)          # the value is there when not a secret


def test_secrets_in_addresses_and_reasons_are_masked_before_escaping():
    secret = "tok|<en>"
    plan = make_plan(make_action("replace", "view.orders", reason=f"source changed from {secret} to d-2"))
    markdown = render_markdown(plan, frozenset({secret}))
    assert "from (sensitive) to d-2" in markdown and "tok" not in markdown


@pytest.mark.parametrize("secret", ["Field", "code", "false", "dataset"])
def test_a_secret_equal_to_a_layout_word_masks_values_not_the_layout(secret):
    # masking is by value: a secret that happens to be a word of the layout (or a JSON
    # literal, or part of an address) must not rewrite the layout, only the values equal to it
    changes = [("datasources.Orders.database", "public", secret), ("name", "Orders", "Orders v2")]
    plan = make_plan(make_action("update", "dataset.sales", changes=changes))
    markdown = render_markdown(plan, frozenset({secret}))
    assert "(sensitive)" in markdown and "dataset.sales" in markdown and "Orders v2" in markdown
    text = render_text(plan, frozenset({secret}))
    assert '~ datasources.Orders.database: "(sensitive)" → "(sensitive)"' in text
    assert "# dataset.sales will be updated" in text
    loaded = json.loads(render_json(plan, frozenset({secret})))
    change = loaded["actions"][0]["changes"][0]
    assert (change["before"], change["after"]) == ("(sensitive)", "(sensitive)")


def test_masking_cannot_push_the_comment_over_the_limit():
    secret = "ab12"                                    # 4 characters become 11: "(sensitive)"
    changes = [(f"columns.C{i}.columnType", secret * 3, secret * 4) for i in range(8)]
    actions = [make_action("update", f"dataset.d{i:03}", changes=changes) for i in range(300)]
    markdown = render_markdown(make_plan(*actions), frozenset({secret}), limit=20000)
    assert len(markdown) <= 20000 and secret not in markdown
    assert "were left out" in markdown


# -- GitHub's size limit -------------------------------------------------------------------------

def make_big_plan(updates=500, deletes=20, replaces=10):
    changes = [(f"columns.Column{j}.columnType", "NUMBER", "STRING") for j in range(6)]
    actions = [make_action("update", f"dataset.sales-{i:04}", changes=changes) for i in range(updates)]
    actions += [make_action("delete", f"dataset.old-{i:03}", reason="removed from the manifests") for i in range(deletes)]
    actions += [make_action("replace", f"view.moved-{i:03}", reason="source changed") for i in range(replaces)]
    return make_plan(*actions)


def left_out(markdown):
    match = re.search(r"Details of (\d+) resources? (?:was|were) left out to fit GitHub's comment limit; "
                      r"run `qrvey-iac plan` for the full plan\.", markdown)
    return int(match.group(1)) if match else 0


def test_500_changed_datasets_fit_with_the_full_summary():
    plan = make_big_plan()
    markdown = render_markdown(plan)
    assert len(render_text(plan)) > GITHUB_COMMENT_LIMIT      # so something had to give
    assert len(markdown) <= GITHUB_COMMENT_LIMIT
    lines = markdown.splitlines()
    assert lines[lines.index(COUNTS_HEADER) + 2] == "| 0 | 500 | 10 | 20 | 0 | 0 |"
    destructive = section(markdown, "Destructive actions")
    assert len(destructive) == 30
    for action in plan.changes:
        if action.op in ("delete", "replace"):
            assert f"- <code>{action.address}</code> **{action.op}**: {action.reason}" in destructive
    shown = markdown.count("<details>")
    assert 0 < shown < 530 and shown + left_out(markdown) == 530
    assert "<details><summary><code>dataset.old-000</code>" in markdown   # destructive details first
    assert len(section(markdown, "Changes from the manifests")) == 500   # the lists still fit


def test_details_are_cut_from_the_end_and_the_note_counts_them():
    plan = make_big_plan(updates=60, deletes=0, replaces=0)
    full = render_markdown(plan)
    assert "left out" not in full and full.count("<details>") == 60
    cut = render_markdown(plan, limit=len(full) - 1)
    assert len(cut) <= len(full) - 1
    assert cut.count("<details>") == 59 and left_out(cut) == 1
    assert "<code>dataset.sales-0059</code>: update</summary>" not in cut
    assert "Details of 1 resource was left out" in cut


def test_lists_collapse_with_a_count_before_the_destructive_list_does():
    actions = [make_action("update", f"dataset.drifted-{i:04}", reason="changed outside qrvey-iac", drift=True)
               for i in range(900)]
    actions += [make_action("delete", f"dataset.gone-{i:03}", reason="removed from the manifests") for i in range(40)]
    markdown = render_markdown(make_plan(*actions), limit=20000)
    assert len(markdown) <= 20000
    assert len(section(markdown, "Destructive actions")) == 40
    drift = section(markdown, "Changed outside qrvey-iac (drift)")
    listed = len(drift) - 1
    assert 0 < listed < 900
    assert drift[-1] == (f"- _…and {900 - listed} more drift changes, not listed to fit GitHub's comment "
                         "limit; run `qrvey-iac plan` for the full plan._")
    assert "<details>" not in markdown and left_out(markdown) == 940


def test_a_huge_destructive_list_still_keeps_the_counts_and_the_limit():
    name = "a-rather-long-dataset-name-that-uses-most-of-the-sixty-four"
    actions = [make_action("delete", f"dataset.{name}-{i:05}", reason="removed from the manifests")
               for i in range(3000)]
    actions.append(make_action("create", "dataset.new"))
    markdown = render_markdown(make_plan(*actions))
    assert len(markdown) <= GITHUB_COMMENT_LIMIT
    lines = markdown.splitlines()
    assert lines[lines.index(COUNTS_HEADER) + 2] == "| 1 | 0 | 0 | 3000 | 0 | 0 |"
    destructive = section(markdown, "Destructive actions")
    listed = len(destructive) - 1
    assert listed > 300
    assert destructive[-1].startswith(f"- _…and {3000 - listed} more destructive actions, not listed")
    assert section(markdown, "Changes from the manifests")[0].startswith("- _…and 1 more changes")


@pytest.mark.parametrize("limit", [3000, 4321, 8000, 15000, 40000])
def test_any_limit_is_respected(limit):
    markdown = render_markdown(make_big_plan(updates=120), frozenset({"NUMBER"}), limit=limit)
    assert len(markdown) <= limit
    assert "| 0 | 120 | 10 | 20 | 0 | 0 |" in markdown


def test_a_limit_too_small_for_the_summary_is_refused():
    with pytest.raises(ValueError, match="limit 100"):
        render_markdown(make_big_plan(), limit=100)


# -- JSON ----------------------------------------------------------------------------------------

def test_json_round_trips_to_an_equal_plan():
    plan = make_mixed_plan()
    data = json.loads(render_json(plan))
    assert data.pop("summary") == plan.summary()
    assert Plan.model_validate_json(json.dumps(data)) == plan


def test_json_masks_secrets():
    assert SECRET not in render_json(make_mixed_plan(), frozenset({SECRET}))


def test_blocked_views_come_first_in_markdown_and_are_counted_in_text():
    blocked = make_action("blocked", "view.partner", drift=True,
                          reason="its source dataset d-9 in app a-p was deleted in Qrvey: restore it")
    plan = make_plan(make_action("delete", "dataset.old", reason="removed from the manifests"), blocked)
    markdown = render_markdown(plan)
    assert section(markdown, "Blocked: apply refuses these until fixed or excluded") == [
        "- <code>view.partner</code> **blocked**: its source dataset d-9 in app a-p was deleted in Qrvey: "
        "restore it · drift"]
    lines = markdown.splitlines()
    assert lines[lines.index("| create | update | replace | delete | share | unshare | blocked |") + 2] == (
        "| 0 | 0 | 0 | 1 | 0 | 0 | 1 |")
    assert markdown.index("#### Blocked") < markdown.index("#### Destructive actions")
    text = render_text(plan)
    assert "  # view.partner cannot be planned (its source dataset d-9 in app a-p was deleted in Qrvey: " \
           "restore it) [drift]\n  ! view.partner\n" in text
    assert text.endswith("Plan: 0 to create, 0 to update, 0 to replace, 1 to delete, "
                         "1 blocked (apply refuses until fixed or excluded).\n")


# -- plans show what will exist -------------------------------------------------------------------

def test_a_create_lists_every_field_it_sends_with_secrets_masked():
    text = render_text(make_mixed_plan(), frozenset({SECRET}))
    campaigns = text.split("# dataset.campaigns will be created")[1].split("\n\n")[0]
    for line in ['datasources.Main.connectionId  = "(sensitive)"', 'datasources.Main.connectorType = "MSSQL_LIVE"',
                 'datasources.Main.query         = "select id, budget, owner\\nfrom campaigns where active = 1"',
                 'columns.Budget.origColumnType  = "DECIMAL"', "columns.Owner.visible          = false",
                 'columns.Owner.accessRoles      = ["marketing", "finance"]',
                 'dataSync.schedule.cron         = "0 4 * * *"', 'customAttributes.team          = "growth"']:
        assert f"\n      {line}" in campaigns
    view = text.split("# view.campaigns-emea will be created")[1]
    assert '      columns.Budget.columnName = "Budget (EUR)"\n      columns.Owner.visible     = false\n' in view
    assert "s3cr3t" not in text and "qrveyIacAddress" not in text
    markdown = render_markdown(make_mixed_plan(), frozenset({SECRET}))
    assert '| <code>columns.Owner.accessRoles</code> | <code>&#91;"marketing", "finance"&#93;</code> |' in markdown
    assert "| <code>datasources.Main.connectionId</code> | <code>\"(sensitive)\"</code> |" in markdown
    assert "s3cr3t" not in markdown


def test_a_replaced_view_says_it_gets_a_new_id():
    source = make_dataset("orders", shared=True)
    view = make_view("orders-emea", "dataset.orders")
    state = State(resources={
        source.address: make_recorded(source, "d-orders"),
        view.address: ResourceState(kind=view.kind, datasetId="v-old", appId=EMEA.app_id, userId=EMEA.user_id,
                                    source={"address": "dataset.other"}, applied_hash=canonical_hash(view.desired)),
    })
    live = {source.address: make_live(source, "d-orders"),
            view.address: {"datasetId": "v-old", "name": "Orders-Emea", "columns": [],
                           "customAttributes": {"qrveyIacAddress": view.address}}}
    plan = build_plan(Manifest(resources={source.address: source, view.address: view}), state, Live(objects=live))
    assert [(a.op, a.address) for a in plan.changes] == [("replace", "view.orders-emea")]
    text = render_text(plan)
    assert ("  -/+ view.orders-emea [id=v-old]\n      ! a new id replaces v-old: anything that points at the old id "
            "(dashboards, charts, links, other apps' content) will lose it\n      app    = emea\n"
            "      source = dataset.orders\n      name   = \"Orders-Emea\"\n") in text
    assert "a new id replaces v-old: anything that points at the old id" in render_markdown(plan)


def test_a_datasource_rename_reads_per_field_not_as_json():
    changes = [("datasources.OrdersTable.name", "Orders", "OrdersTable"),
               ("datasources.OrdersTable.tableName", "orders", "orders_v2")]
    text = render_text(make_plan(make_action("update", "dataset.orders", changes=changes)))
    assert ('      ~ datasources.OrdersTable.name: "Orders" → "OrdersTable"\n'
            '      ~ datasources.OrdersTable.tableName: "orders" → "orders_v2"\n') in text
