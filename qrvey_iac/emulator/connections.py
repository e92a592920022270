"""Connection routes (qrvey-api.md §2.2 C1-C5), with Qrvey's lower-case id keys.

The password is stored (also in the data file) but never part of a response.
"""

from __future__ import annotations

import copy

from qrvey_iac.emulator.context import Call
from qrvey_iac.emulator.listing import list_page
from qrvey_iac.emulator.validation import require_object, require_text

SECRET_FIELDS = ("password",)
_SERVER_FIELDS = ("connectorid", "appid", "userid")


def public_connection(connection: dict) -> dict:
    """A connection as responses show it: without its secrets."""
    return {key: value for key, value in connection.items() if key not in SECRET_FIELDS}


def create_connection(call: Call) -> dict:
    """POST /connections: name and connectorType are required; any other field is kept."""
    fields = _client_fields(call.body)
    connection = {"connectorid": call.mint_uuid(), **fields, "appid": call.app_id, "userid": call.user_id}
    call.world.put_connection(connection)
    return public_connection(connection)


def get_connection(call: Call) -> dict:
    return public_connection(call.owned_connection(call.params["connectionId"]))


def list_connections(call: Call) -> dict:
    """POST /connections/all: the path app's connections, same envelope as the dataset list."""
    mine = [public_connection(conn) for conn in call.world.ordered_connections() if call.owns(conn, "appid", "userid")]
    return list_page(call.body, mine, call.world.connection_order, key="connectorid", shape=call.config.list_shape)


def update_connection(call: Call) -> dict:
    """PUT /connections/{id}: replace the client fields; an omitted password is kept."""
    stored = call.owned_connection(call.params["connectionId"])
    fields = _client_fields(call.body)
    for key in SECRET_FIELDS:
        if key not in fields and key in stored:
            fields[key] = stored[key]
    updated = {"connectorid": stored["connectorid"], **fields, "appid": stored["appid"], "userid": stored["userid"]}
    call.world.put_connection(updated)
    return public_connection(updated)


def delete_connection(call: Call) -> dict:
    """DELETE /connections/{id}: returns the deleted connection; datasets using it stay."""
    connection_id = call.params["connectionId"]
    call.owned_connection(connection_id)
    return public_connection(call.world.remove_connection(connection_id))


def _client_fields(body: object) -> dict:
    body = require_object(body, "body")
    require_text(body, "name")
    require_text(body, "connectorType")
    return {key: copy.deepcopy(value) for key, value in body.items() if key not in _SERVER_FIELDS}
