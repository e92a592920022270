"""Natural order wherever addresses are listed: ds-2 before ds-10."""

from qrvey_iac.core.order import natural_key, naturally_sorted
from qrvey_iac.core.planner import Live, build_plan
from qrvey_iac.core.render import render_text
from qrvey_iac.core.render_markdown import render_markdown
from qrvey_iac.core.selection import select
from qrvey_iac.core.state import State

from tests.unit.test_planner import live_dataset, make_dataset, make_manifest, recorded


def test_numbers_compare_as_numbers_and_text_as_text():
    names = ["ds-10", "ds-2", "ds-1", "ds-b", "ds-a", "ds-02", "ds", "ds-100-x", "ds-100-2"]
    assert naturally_sorted(names) == ["ds", "ds-1", "ds-02", "ds-2", "ds-10", "ds-100-2", "ds-100-x", "ds-a", "ds-b"]
    assert natural_key("view.v9") < natural_key("view.v10") < natural_key("view.w1")


def test_an_address_that_starts_with_digits_sorts_against_one_that_does_not():
    assert naturally_sorted(["dataset.x", "dataset.10", "dataset.9"]) == ["dataset.9", "dataset.10", "dataset.x"]
    assert naturally_sorted(["10", "a", "9"]) == ["9", "10", "a"]


def _five_creates():
    resources = [make_dataset(f"ds-{i}", display=f"DS {i}") for i in (1, 2, 10, 11, 3)]
    return build_plan(make_manifest(*resources), State(), _no_live(), environment="test")


def _no_live():
    return Live(objects={}, sources={}, fingerprints={})


def test_plan_actions_are_in_natural_order():
    plan = _five_creates()
    assert [a.address for a in plan.changes] == [f"dataset.ds-{i}" for i in (1, 2, 3, 10, 11)]


def test_text_and_markdown_plans_list_in_natural_order():
    plan = _five_creates()
    for text in (render_text(plan), render_markdown(plan)):
        positions = [text.index(f"dataset.ds-{i}") for i in (1, 2, 3, 10, 11)]
        assert positions == sorted(positions), text


def test_selection_notes_are_in_natural_order():
    resources = [make_dataset(f"ds-{i}", display=f"DS {i}") for i in (1, 2, 10)]
    plan = build_plan(make_manifest(*resources), State(), _no_live(), environment="test")
    notes = select(plan, ("dataset.ds-1",), ()).notes
    assert notes == ("dataset.ds-2 left out: not targeted", "dataset.ds-10 left out: not targeted")


def test_deletes_are_in_natural_order():
    resources = [make_dataset(f"ds-{i}", display=f"DS {i}") for i in (2, 10, 1)]
    state = State(resources={r.address: recorded(r, dataset_id=f"d{i}") for i, r in enumerate(resources)})
    live = Live(objects={r.address: live_dataset(r, f"d{i}") for i, r in enumerate(resources)}, sources={},
                fingerprints={})
    plan = build_plan(make_manifest(), state, live, environment="test")
    assert [a.address for a in plan.changes] == ["dataset.ds-1", "dataset.ds-2", "dataset.ds-10"]
