"""A managed document refers only to addresses its resource depends on: the planner and apply
skip resolving the documents of resources that depend on nothing (core/kinds/base.reference)."""

from __future__ import annotations

from qrvey_iac.core.kinds.base import unresolved_references
from qrvey_iac.wiring import Workspace


def test_every_reference_in_the_example_is_to_a_dependency(project):
    manifest = Workspace.open(str(project.root / "qrvey-iac.yaml"), None, {}).manifest()
    referring = {address: unresolved_references(resource.desired) for address, resource in manifest.resources.items()}
    assert {a for a, refs in referring.items() if refs}, "the example has no reference: the test checks nothing"
    for address, refs in referring.items():
        assert refs <= set(manifest.resources[address].depends_on), address


def test_apply_sends_the_ids_of_references_and_literal_ids_as_written(project):
    assert project.run("apply", "--auto-approve").exit_code == 0
    world, state = project.world(), project.state()
    connection_id = state["resources"]["connection.warehouse"]["datasetId"]
    sent = [d["connectionId"] for r in state["resources"].values() if r["kind"] == "Dataset"
            for d in world["datasets"][r["datasetId"]]["datasources"]]
    assert sent.count(connection_id) == 3                           # the three `connection: connection.warehouse`
    assert len(sent) > 3 and not [c for c in sent if "known after apply" in c]
    assert project.run("plan", "--detailed-exitcode").exit_code == 0
