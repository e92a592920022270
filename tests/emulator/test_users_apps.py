"""Creator users and applications, written from qrvey-api.md §1.4 (and §8: Qrvey's own sample
tests create a user, then an app, before any dataset):

- ``POST /devapi/v4/core/user`` with ``{email, password}`` returns ``{userid, ...}``;
- ``GET`` / ``DELETE /core/user/{id}``;
- ``POST /user/{u}/app`` with ``{name, description}`` returns ``{appid, userid, name, description}``;
- ``GET /user/{u}/app/{a}`` also returns ``endUserLink``; ``DELETE /user/{u}/app/{a}``;
- ``POST /user/{u}/app/all`` lists them; ids are short strings of ``[A-Za-z0-9_-]`` (§1.4).
"""

from __future__ import annotations

import re

import pytest
from emulator_helpers import create_dataset, dataset_body, error_message, make_client, ok

from qrvey_iac.emulator import EmulatorConfig, World, create_app

pytestmark = pytest.mark.anyio
V4 = "/devapi/v4"
SHORT_ID = re.compile(r"^[A-Za-z0-9_-]{7,10}$")


async def new_user(client, email="owner@example.com"):
    return ok(await client.post(f"{V4}/core/user", json={"email": email, "password": "Secret-1"}))


async def new_app(client, user_id, name="Sales", description="Sales app"):
    return ok(await client.post(f"{V4}/user/{user_id}/app", json={"name": name, "description": description}))


async def test_create_user_answers_a_userid_and_never_the_password(client, emulator):
    user = await new_user(client)
    assert SHORT_ID.match(user["userid"])
    assert user["email"] == "owner@example.com"
    assert "password" not in user
    assert ok(await client.get(f"{V4}/core/user/{user['userid']}")) == user
    assert "Secret-1" not in emulator.world.file_text()


async def test_create_user_needs_email_and_password(client):
    assert "password" in error_message(await client.post(f"{V4}/core/user", json={"email": "a@b.c"}), 400)
    assert "email" in error_message(await client.post(f"{V4}/core/user", json={"password": "x"}), 400)


async def test_a_second_user_with_the_same_email_is_refused(client):
    first = await new_user(client)
    message = error_message(await client.post(f"{V4}/core/user", json={"email": "OWNER@example.com",
                                                                       "password": "p"}), 400)
    assert first["userid"] in message


async def test_delete_user_then_get_is_404(client):
    user = await new_user(client)
    assert ok(await client.delete(f"{V4}/core/user/{user['userid']}"))["userid"] == user["userid"]
    assert user["userid"] in error_message(await client.get(f"{V4}/core/user/{user['userid']}"), 404)
    error_message(await client.delete(f"{V4}/core/user/{user['userid']}"), 404)


async def test_create_app_answers_appid_userid_name_description(client):
    user = await new_user(client)
    app = await new_app(client, user["userid"])
    assert set(app) == {"appid", "userid", "name", "description"}
    assert SHORT_ID.match(app["appid"])
    assert (app["userid"], app["name"], app["description"]) == (user["userid"], "Sales", "Sales app")


async def test_get_app_also_answers_its_end_user_link(client):
    user = await new_user(client)
    app = await new_app(client, user["userid"])
    got = ok(await client.get(f"{V4}/user/{user['userid']}/app/{app['appid']}"))
    assert {k: v for k, v in got.items() if k != "endUserLink"} == app
    assert app["appid"] in got["endUserLink"]


async def test_delete_app_then_get_is_404_and_its_dataset_routes_too(client):
    user = await new_user(client)
    app = await new_app(client, user["userid"])
    prefix = f"{V4}/user/{user['userid']}/app/{app['appid']}"
    await create_dataset(client, prefix=prefix)
    assert ok(await client.delete(prefix))["appid"] == app["appid"]
    assert app["appid"] in error_message(await client.get(prefix), 404)
    assert app["appid"] in error_message(await client.post(f"{prefix}/qollect/dataset/all", json={}), 404)


async def test_list_apps_of_a_user(client):
    user = await new_user(client)
    apps = [await new_app(client, user["userid"], name=name) for name in ("A", "B", "C")]
    await client.delete(f"{V4}/user/{user['userid']}/app/{apps[1]['appid']}")
    listed = ok(await client.post(f"{V4}/user/{user['userid']}/app/all", json={}))
    assert listed == {"Count": 2, "Items": [apps[0], apps[2]]}


async def test_create_app_needs_a_name_and_takes_an_empty_description(client):
    user = await new_user(client)
    assert "name" in error_message(await client.post(f"{V4}/user/{user['userid']}/app", json={}), 400)
    assert (await new_app(client, user["userid"], description=""))["description"] == ""
    assert "description" in error_message(await client.post(f"{V4}/user/{user['userid']}/app",
                                                            json={"name": "x", "description": 3}), 400)


async def test_deleting_a_user_deletes_its_apps(client):
    user = await new_user(client)
    app = await new_app(client, user["userid"])
    await client.delete(f"{V4}/core/user/{user['userid']}")
    error_message(await client.get(f"{V4}/user/{user['userid']}/app/{app['appid']}"), 404)


async def test_user_and_app_routes_need_the_api_key(app):
    async with make_client(app, api_key=None) as anonymous:
        error_message(await anonymous.post(f"{V4}/core/user", json={"email": "a@b.c", "password": "p"}), 401)
        error_message(await anonymous.get(f"{V4}/user/u/app/a"), 401)


async def test_a_known_path_with_another_method_is_405(client):
    error_message(await client.put(f"{V4}/core/user"), 405)
    error_message(await client.post(f"{V4}/user/u/app/a"), 405)


async def test_by_default_an_app_never_created_exists_on_first_use(client):
    """``unknown_apps: create``: any user and app id works, as before users and apps existed."""
    created = await create_dataset(client, prefix=f"{V4}/user/u-any/app/a-any")
    assert created["appId"] == "a-any"
    assert ok(await client.get(f"{V4}/user/u-any/app/a-any"))["userid"] == "u-any"
    assert ok(await client.get(f"{V4}/user/u-other/app/a-other"))["appid"] == "a-other"


async def test_an_app_made_on_first_use_changes_nothing_to_save(client, emulator):
    before = emulator.world.revision
    ok(await client.get(f"{V4}/user/u-any/app/a-any"))
    assert emulator.world.revision == before


@pytest.fixture
def strict():
    return create_app(EmulatorConfig(unknown_apps="refuse"))


async def test_refuse_mode_knows_only_apps_created(strict):
    async with make_client(strict) as client:
        assert "a-any" in error_message(await client.get(f"{V4}/user/u-any/app/a-any"), 404)
        response = await client.post(f"{V4}/user/u-any/app/a-any/qollect/dataset", json=dataset_body())
        assert "App a-any of user u-any not found" in error_message(response, 404)
        error_message(await client.post(f"{V4}/user/u-any/app", json={"name": "x"}), 404)    # no such user
        user = await new_user(client)
        app = await new_app(client, user["userid"])
        prefix = f"{V4}/user/{user['userid']}/app/{app['appid']}"
        assert ok(await client.post(f"{prefix}/qollect/dataset", json=dataset_body()))["appId"] == app["appid"]


async def test_users_and_apps_survive_a_save_and_a_load(tmp_path, client, emulator):
    user = await new_user(client)
    app = await new_app(client, user["userid"])
    await client.delete(f"{V4}/user/{user['userid']}/app/{app['appid']}")
    kept = await new_app(client, user["userid"], name="Kept")
    emulator.save(tmp_path / "world.json")
    world = World.load(tmp_path / "world.json")
    assert world.users[user["userid"]]["email"] == user["email"]
    assert world.apps[user["userid"]] == {app["appid"]: None, kept["appid"]: {**kept, "createDate": world.apps[
        user["userid"]][kept["appid"]]["createDate"]}}
    assert {user["userid"], kept["appid"]} <= world.taken_ids()


def test_a_world_file_without_users_or_apps_still_loads(tmp_path):
    path = tmp_path / "old.json"
    path.write_text('{"format": "qrvey-iac-emulator-world", "version": 1, "datasets": {}}')
    world = World.load(path)
    assert (world.users, world.apps) == ({}, {})


def test_a_world_file_with_a_bad_apps_section_is_refused(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"apps": {"u": {"a": 3}}}')
    with pytest.raises(ValueError, match="apps.u"):
        World.load(path)


def test_emulator_serve_takes_unknown_apps_and_list_shape(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from emulator_helpers import free_port, http_client, wait_for_port

    port = free_port()
    command = [sys.executable, "-m", "qrvey_iac", "emulator", "serve", "--port", str(port),
               "--unknown-apps", "refuse", "--list-shape", "items-token"]
    process = subprocess.Popen(command, cwd=Path(__file__).parents[2], stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, process)
        with http_client(f"http://127.0.0.1:{port}") as client:
            assert client.get(f"{V4}/user/u/app/a").status_code == 404
            user = client.post(f"{V4}/core/user", json={"email": "a@b.c", "password": "p"}).json()
            app = client.post(f"{V4}/user/{user['userid']}/app", json={"name": "A"}).json()
            listed = client.post(f"{V4}/user/{user['userid']}/app/all", json={}).json()
        assert listed == {"count": 1, "items": [app]}
    finally:
        process.terminate()
        process.wait(timeout=10)
