"""`plan` checks that each app alias the manifests use exists in Qrvey (issue 16 point 4): one
GET per app (qrvey-api.md §1.4 ``GET /user/{u}/app/{a}``), before planning; a missing app fails
with an error naming the alias, its userId and appId and the config file."""

from __future__ import annotations

import httpx
import pytest

from qrvey_iac.emulator import EmulatorConfig
from qrvey_iac.emulator.testing import running_server

KEY = "app-check-key"


def point_at(project, server, apps: dict[str, tuple[str, str]]) -> None:
    """The example's local environment aimed at ``server``, with these apps."""
    lines = "".join(f"      {alias}: {{userId: {user}, appId: {app}}}\n" for alias, (user, app) in apps.items())
    config = project.root / "qrvey-iac.yaml"
    text = config.read_text().replace("    endpoint: local\n", f"    endpoint: {server.base_url}\n"
                                      "    apiKeyEnv: QRVEY_API_KEY\n", 1)
    head, rest = text.split("    apps:\n", 1)
    rest = rest.split("    variables:", 1)[1]
    config.write_text(f"{head}    apps:\n{lines}    variables:{rest}")


def set_up(server, name: str) -> tuple[str, str]:
    """A user and an app made with the §1.4 endpoints, as Qrvey's own sample tests do."""
    headers = {"x-api-key": KEY}
    with httpx.Client(base_url=f"{server.base_url}/devapi/v4", headers=headers) as http:
        user = http.post("/core/user", json={"email": f"{name}@example.com", "password": "pw-1"}).json()
        app = http.post(f"/user/{user['userid']}/app", json={"name": name, "description": ""}).json()
    return user["userid"], app["appid"]


@pytest.fixture
def strict(project, monkeypatch):
    """An emulator that knows only the apps created in it (``unknown_apps: refuse``)."""
    monkeypatch.setenv("QRVEY_API_KEY", KEY)
    with running_server(EmulatorConfig(api_key=KEY, unknown_apps="refuse")) as server:
        yield server


def test_the_quick_start_works_against_apps_made_with_the_user_and_app_endpoints(project, strict):
    point_at(project, strict, {alias: set_up(strict, alias) for alias in ("sales", "emea", "apac")})
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert project.run("plan").stdout.strip() == "No changes. Qrvey matches the manifests."
    assert strict.emulator.request_counts["GET /user/{userId}/app/{appId}"] == 3 * 2          # one GET per app, per run


@pytest.mark.parametrize("command", [["plan"], ["apply", "--auto-approve"], ["drift"]])
def test_an_app_that_does_not_exist_fails_naming_alias_ids_and_config(project, strict, command):
    apps = {alias: set_up(strict, alias) for alias in ("sales", "apac")}
    apps["emea"] = ("u-emea-owner", "a-nowhere")
    point_at(project, strict, apps)
    result = project.run(*command)
    assert result.exit_code == 1, result.output
    assert ("Error: qrvey-iac.yaml: environments.local.apps.emea: app 'emea' (userId u-emea-owner, appId "
            "a-nowhere) does not exist in Qrvey (GET /user/u-emea-owner/app/a-nowhere answered 404): check its "
            "userId and appId, or create the app in Qrvey") in result.stderr
    assert "apps.sales" not in result.stderr and "apps.apac" not in result.stderr
    assert "Traceback" not in result.output
    assert "Plan:" not in result.stdout
    assert not strict.emulator.world.datasets


def test_every_missing_app_is_named_at_once(project, strict):
    point_at(project, strict, {"sales": ("u1", "a1"), "emea": ("u2", "a2"), "apac": set_up(strict, "apac")})
    result = project.run("plan")
    assert "apps.emea: app 'emea'" in result.stderr and "apps.sales: app 'sales'" in result.stderr


def test_an_app_deleted_in_the_embedded_emulator_fails_plan(project):
    """The embedded emulator makes the config's apps on first use (so the quick start needs no
    setup); one deleted there is gone, and plan says so."""
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert project.world()["apps"]["u-emea-owner"]["a-emea"]["appid"] == "a-emea"

    def delete_emea(world):
        world["apps"]["u-emea-owner"]["a-emea"] = None
    project.edit_world(delete_emea)
    result = project.run("plan")
    assert result.exit_code == 1
    assert "environments.local.apps.emea: app 'emea' (userId u-emea-owner, appId a-emea)" in result.stderr


def test_apps_no_manifest_uses_are_not_checked(project, strict):
    apps = {alias: set_up(strict, alias) for alias in ("sales", "emea", "apac")}
    apps["unused"] = ("u-none", "a-none")
    point_at(project, strict, apps)
    assert project.run("plan").exit_code == 0
