"""The flows check, before planning, that each app the manifests use exists (flows.check_apps),
on the ports alone: one get_app per app, whatever the number of resources in it."""

from __future__ import annotations

import pytest
from test_use_cases import EMEA, SALES, FakeWorkspace, QuietUI, dataset, manifest, view

from qrvey_iac.core.errors import ConfigError
from qrvey_iac.flows import RunOptions, converge, make_plan, read_drift

pytestmark = pytest.mark.anyio


def reader(wanted):
    async def read_manifest():
        return wanted
    return read_manifest


async def test_each_app_is_asked_for_once_per_run_before_planning():
    workspace = FakeWorkspace()
    wanted = manifest(dataset(), dataset("other"), view(), view("second"))
    await make_plan(workspace, reader(wanted), QuietUI(), RunOptions())
    assert sorted(workspace.qrvey_fake.app_checks) == [SALES, EMEA]


@pytest.mark.parametrize("run", ["plan", "apply", "drift"])
async def test_a_missing_app_stops_the_command_before_anything_is_planned_or_written(run):
    workspace, ui = FakeWorkspace(), QuietUI()
    workspace.qrvey_fake.missing_apps.add(EMEA)
    wanted = reader(manifest(dataset(), view()))
    with pytest.raises(ConfigError) as caught:
        if run == "plan":
            await make_plan(workspace, wanted, ui, RunOptions())
        elif run == "apply":
            await converge(workspace, wanted, ui, RunOptions(command="apply", auto_approve=True))
        else:
            await read_drift(workspace, wanted, ui, RunOptions())
    [problem] = caught.value.problems
    assert (problem.file, problem.field) == ("qrvey-iac.yaml", "environments.test.apps.emea")
    assert "app 'emea' (userId u2, appId a-emea) does not exist in Qrvey" in problem.message
    assert ui.shown == [] and workspace.qrvey_fake.writes() == []
