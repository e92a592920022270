"""Issue 13 points 1-3 through the CLI: per-field drift next to a manifest change, protect as a
state-only change, and protection that follows --target / --exclude."""

import json

import yaml

from tests.cli.test_pr_workflow import applied, protect_products


def edit_dataset(project, address, edit):
    dataset_id = project.dataset_id(address)

    def change(world):
        edit(world["datasets"][dataset_id])
    project.edit_world(change)


def set_override(project, overrides):
    config = yaml.safe_load((project.root / "qrvey-iac.yaml").read_text())
    config["environments"]["local"]["overrides"] = overrides
    (project.root / "qrvey-iac.yaml").write_text(yaml.safe_dump(config))


# -- point 3: selection and protection agree ----------------------------------------------------

def test_destroy_target_is_not_refused_for_an_unrelated_protected_dataset(project):
    protect_products(project)
    applied(project)
    result = project.run("destroy", "--target", "dataset.emea-targets", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "protected" not in result.output
    resources = project.state()["resources"]
    assert "dataset.emea-targets" not in resources
    assert "dataset.products" in resources and len(resources) == 9


def test_a_protected_dataset_excluded_does_not_block_the_rest(project):
    protect_products(project)
    applied(project)
    result = project.run("destroy", "--exclude", "dataset.products", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert set(project.state()["resources"]) == {"dataset.products"}


def test_a_targeted_protected_dataset_still_refuses(project):
    protect_products(project)
    applied(project)
    for args in (("--target", "dataset.products"), ()):
        result = project.run("destroy", *args, "--auto-approve")
        assert result.exit_code == 1
        assert "the plan would destroy protected resources: dataset.products (delete" in result.stderr
    assert len(project.state()["resources"]) == 10


def test_plan_target_skips_a_protected_delete_elsewhere(project):
    protect_products(project)
    applied(project)
    project.manifest("sales.yaml").write_text(
        "\n---\n".join(d for d in project.manifest("sales.yaml").read_text().split("---\n") if "name: products" not in d))
    set_override(project, {})
    project.replace_in("sales.yaml", "name: Customers\n", "name: Clients\n")
    result = project.run("plan", "--target", "dataset.customers")
    assert result.exit_code == 0, result.output
    assert "~ dataset.customers" in result.stdout and "- dataset.products left out: not targeted" in result.stdout
    assert "dataset.products will be destroyed" not in result.stdout
    refused = project.run("plan")
    assert refused.exit_code == 1 and "dataset.products (delete" in refused.stderr
