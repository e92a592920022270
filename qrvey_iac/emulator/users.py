"""Creator users and applications (qrvey-api.md §1.4): the setup endpoints Qrvey's own sample
tests call before any dataset, and which app a dataset route may use.

Routes, under ``/devapi/v4`` (or ``/api/v4``):

- ``POST /core/user`` ``{email, password, ...}`` -> ``{userid, email, ...}`` (never the password);
- ``GET`` / ``DELETE /core/user/{userId}``;
- ``POST /user/{userId}/app`` ``{name, description}`` -> ``{appid, userid, name, description}``;
- ``GET /user/{userId}/app/{appId}`` -> the same plus ``endUserLink``; ``DELETE`` it;
- ``POST /user/{userId}/app/all`` -> the user's apps, in the list envelope of listing.py.

Ids use Qrvey's lower-case keys (``userid``, ``appid``), as connections do. What the docs do
not say is the emulator's choice: a second user with the same email is refused (400); deleting a
user deletes its apps; the delete answers are the deleted object.

Which apps exist (``EmulatorConfig.unknown_apps``): with ``create`` (the default), a user and
app named in a path that the world does not have are made on first use, by any route naming
them (a GET of the app included), so any app id works as before and a plan's check that its
apps exist passes; with ``refuse``, only apps made with ``POST /user/{u}/app`` exist, and every
route naming another app answers 404. Either way an app deleted stays deleted: the world keeps
it as ``None`` under its user, and its routes answer 404.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote

from qrvey_iac.emulator.context import Call, utc_now
from qrvey_iac.emulator.errors import ApiError, invalid, not_found, wrong_type
from qrvey_iac.emulator.listing import list_page
from qrvey_iac.emulator.validation import require_object, require_text

API_ROOTS = ("devapi", "api")
END_USER_LINK = "https://qrvey-emulator.local/app/{appid}"
Handler = Callable[[Call], dict]


def create_user(call: Call) -> dict:
    """POST /core/user: email and password required; other fields are kept, the password is not."""
    body = require_object(call.body, "body")
    email = require_text(body, "email")
    require_text(body, "password")
    taken = [user for user in call.world.users.values() if str(user.get("email", "")).lower() == email.lower()]
    if taken:
        raise invalid(f"email {email} is already the email of user {taken[0]['userid']}")
    fields = {key: value for key, value in body.items() if key not in ("password", "userid")}
    user = {"userid": call.mint_short_id(), **fields, "createDate": utc_now()}
    call.world.users[user["userid"]] = user
    call.world.mark_changed()
    return user


def get_user(call: Call) -> dict:
    user = call.world.users.get(call.params["userId"])
    if user is None:
        raise not_found("User", call.params["userId"])
    return user


def delete_user(call: Call) -> dict:
    """DELETE /core/user/{id}: the user, and its apps with it."""
    user = get_user(call)
    del call.world.users[user["userid"]]
    apps = call.world.apps.setdefault(user["userid"], {})
    for app_id in apps:
        apps[app_id] = None
    call.world.mark_changed()
    return user


def create_app(call: Call) -> dict:
    """POST /user/{u}/app: name required, description optional; the appid is minted."""
    _require_user(call)
    body = require_object(call.body, "body")
    name = require_text(body, "name")
    description = body.get("description", "")
    if not isinstance(description, str):
        raise wrong_type("description", "a string")
    app = _app_record(call.mint_short_id(), call.user_id, name, description)
    call.world.apps.setdefault(call.user_id, {})[app["appid"]] = app
    call.world.mark_changed()
    return public_app(app)


def get_app(call: Call) -> dict:
    return {**public_app(existing_app(call)), "endUserLink": END_USER_LINK.format(appid=call.app_id)}


def delete_app(call: Call) -> dict:
    app = existing_app(call)
    call.world.apps[call.user_id][call.app_id] = None
    call.world.mark_changed()
    return public_app(app)


def list_apps(call: Call) -> dict:
    """POST /user/{u}/app/all: the user's apps (deleted ones left out), in creation order."""
    _require_user(call)
    apps = [public_app(app) for app in call.world.apps.get(call.user_id, {}).values() if app is not None]
    order = {app["appid"]: position for position, app in enumerate(apps)}
    return list_page(call.body, apps, order, key="appid", shape=call.config.list_shape)


def existing_app(call: Call) -> dict:
    """The path's app: made on first use (``unknown_apps: create``) unless deleted, else 404.

    An app made on first use does not count as a change of the world (nothing to save for
    it: it is made again the same way), so a read-only command leaves the data file alone."""
    apps = call.world.apps.setdefault(call.user_id, {})
    if call.app_id in apps:
        app = apps[call.app_id]
    elif call.config.unknown_apps == "create":
        _require_user(call)
        app = apps[call.app_id] = _app_record(call.world.claim_id(call.app_id), call.user_id, call.app_id, "")
    else:
        app = None
    if app is None:
        raise ApiError(404, f"App {call.app_id} of user {call.user_id} not found")
    return app


def public_app(app: dict) -> dict:
    return {key: app[key] for key in ("appid", "userid", "name", "description")}


def match_account_route(method: str, raw_path: str) -> tuple[Handler, dict[str, str], str] | None:
    """The user or app route of ``raw_path``: its handler, parameters and template (relative
    to ``/devapi/v4``); None for any other path (a dataset or connection route, or no route).
    A known path with another method is a 405."""
    segments = [unquote(segment) for segment in raw_path.split("/")[1:]]
    if segments and not segments[-1]:
        segments.pop()
    if len(segments) < 4 or segments[0] not in API_ROOTS or segments[1] != "v4":
        return None
    rest = segments[2:]
    params: dict[str, str] = {}
    if rest == ["core", "user"]:
        template, methods = "/core/user", {"POST": create_user}
    elif len(rest) == 3 and rest[:2] == ["core", "user"] and rest[2]:
        template, methods = "/core/user/{userId}", {"GET": get_user, "DELETE": delete_user}
        params = {"userId": rest[2]}
    elif len(rest) == 3 and rest[0] == "user" and rest[1] and rest[2] == "app":
        template, methods = "/user/{userId}/app", {"POST": create_app}
        params = {"userId": rest[1]}
    elif len(rest) == 4 and rest[0] == "user" and rest[1] and rest[2] == "app" and rest[3]:
        template, methods = "/user/{userId}/app/{appId}", {"GET": get_app, "DELETE": delete_app}
        params = {"userId": rest[1], "appId": rest[3]}
        if rest[3] == "all" and method == "POST":
            template, methods = "/user/{userId}/app/all", {"POST": list_apps}
    else:
        return None
    if method not in methods:
        raise ApiError(405, f"Method {method} is not allowed on /{'/'.join(rest)}")
    return methods[method], params, template


def _require_user(call: Call) -> None:
    if call.user_id in call.world.users:
        return
    if call.config.unknown_apps == "create":     # made on first use, as existing_app makes apps
        call.world.users[call.world.claim_id(call.user_id)] = {"userid": call.user_id, "createDate": utc_now()}
        return
    raise not_found("User", call.user_id)


def _app_record(app_id: str, user_id: str, name: str, description: str) -> dict:
    return {"appid": app_id, "userid": user_id, "name": name, "description": description, "createDate": utc_now()}
