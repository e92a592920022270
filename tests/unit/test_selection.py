"""--target / --exclude on plans built from literals."""

import pytest

from qrvey_iac.core.errors import PlanError
from qrvey_iac.core.plan import Plan, make_action
from qrvey_iac.core.selection import select


def action(op, address, depends_on=()):
    kind = "DatasetView" if address.startswith("view.") else "Dataset"
    return make_action(op, address=address, kind=kind, reason="test", depends_on=tuple(depends_on))


BUILD = Plan(actions=(
    action("create", "dataset.a"), action("share", "dataset.a"),
    action("create", "view.v", ["dataset.a"]), action("create", "dataset.b"),
))
TEARDOWN = Plan(actions=(
    action("delete", "view.v", ["dataset.a"]), action("delete", "dataset.a"), action("delete", "dataset.b"),
))


def addresses(plan):
    return sorted({a.address for a in plan.actions})


def test_target_pulls_in_dependencies_only():
    chosen = select(BUILD, targets=["view.v"])
    assert addresses(chosen) == ["dataset.a", "view.v"]
    assert chosen.notes == ("dataset.a pulled in: needed by a target", "dataset.b left out: not targeted")


def test_exclude_leaves_out_dependents():
    chosen = select(BUILD, excludes=["dataset.a"])
    assert addresses(chosen) == ["dataset.b"]
    assert "view.v left out: it depends on excluded dataset.a" in chosen.notes


def test_teardown_target_on_a_dataset_pulls_in_its_views():
    chosen = select(TEARDOWN, targets=["dataset.a"])
    assert addresses(chosen) == ["dataset.a", "view.v"]


def test_teardown_exclude_of_a_view_keeps_its_source():
    chosen = select(TEARDOWN, excludes=["view.v"])
    assert addresses(chosen) == ["dataset.b"]
    assert "dataset.a left out: deleting it needs excluded view.v deleted first" in chosen.notes


def test_no_selection_is_identity_and_unknown_is_an_error():
    assert select(BUILD) is BUILD
    with pytest.raises(PlanError, match="unknown address dataset.zzz"):
        select(BUILD, targets=["dataset.zzz"])


REPLACE = Plan(actions=(
    action("replace", "view.v", ["dataset.a"]), action("replace", "dataset.a"), action("share", "dataset.a"),
))


def test_a_replaced_source_keeps_its_replaced_views_together():
    assert addresses(select(REPLACE, targets=["dataset.a"])) == ["dataset.a", "view.v"]
    assert addresses(select(REPLACE, targets=["view.v"])) == ["dataset.a", "view.v"]
    assert addresses(select(REPLACE, excludes=["view.v"])) == []
