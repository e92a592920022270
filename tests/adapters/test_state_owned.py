"""OwnedStore: a state kept to the environment and endpoint it was made for (any store inside)."""

from __future__ import annotations

import pytest
from fakes.state import MemoryStateStore

from qrvey_iac.adapters.state.codec import encode
from qrvey_iac.adapters.state.owned import OwnedStore, endpoint_identity
from qrvey_iac.core.errors import StateOwnerError
from qrvey_iac.core.state import ResourceState, State, StateOwner

PROD = StateOwner(environment="prod", endpoint="https://x.qrveyapp.com")


def owned(inner: MemoryStateStore, owner: StateOwner = PROD, notes: list[str] | None = None) -> OwnedStore:
    return OwnedStore(inner, owner, "state file s.json", "qrvey-iac state claim --env " + owner.environment,
                      notes.append if notes is not None else None)


@pytest.mark.parametrize("written", [
    "https://x.qrveyapp.com", "https://x.qrveyapp.com/", "HTTPS://X.QrveyApp.com:443", "https://x.qrveyapp.com.//",
    "https://user:secret@x.qrveyapp.com", "https://x.qrveyapp.com/?token=abc#top",
])
def test_trivial_differences_of_an_endpoint_are_one_endpoint(written):
    assert endpoint_identity(written) == "https://x.qrveyapp.com"


@pytest.mark.parametrize("other", ["http://x.qrveyapp.com", "https://x.qrveyapp.com:8443", "https://y.qrveyapp.com",
                                   "https://x.qrveyapp.com/Tenant"])
def test_real_differences_are_other_endpoints(other):
    assert endpoint_identity(other) != "https://x.qrveyapp.com"


def test_an_endpoint_keeps_its_path_port_and_ipv6_brackets_and_drops_credentials():
    assert endpoint_identity("http://u:p@[::1]:8080/api/") == "http://[::1]:8080/api"
    assert endpoint_identity("http://Host:80/a/B") == "http://host/a/B"
    assert endpoint_identity("embedded") == "embedded"
    assert "pw" not in endpoint_identity("https://me:pw@host:99999/")       # not a port: still no credentials


def test_a_write_records_the_owner_and_a_read_by_the_owner_passes():
    inner = MemoryStateStore()
    store = owned(inner)
    store.write(State(lineage="L", serial=1), 0)
    assert store.read().owner == PROD
    same = owned(inner, StateOwner(environment="prod", endpoint=endpoint_identity("https://X.qrveyapp.com:443/")))
    assert same.read().serial == 1


@pytest.mark.parametrize("other", [StateOwner(environment="staging", endpoint=PROD.endpoint),
                                   StateOwner(environment="prod", endpoint="https://y.qrveyapp.com")])
def test_a_state_of_another_owner_is_refused_and_left_alone(other):
    inner = MemoryStateStore()
    owned(inner).write(State(lineage="L", serial=1), 0)
    text = inner.text
    with pytest.raises(StateOwnerError, match=f"run `qrvey-iac state claim --env {other.environment}`"):
        owned(inner, other).read()
    assert inner.text == text


def test_an_unowned_state_is_claimed_by_its_first_write_with_one_note():
    inner = MemoryStateStore(encode(State(lineage="L", serial=3, resources={"dataset.a": ResourceState(
        kind="Dataset", datasetId="d", appId="a", userId="u")})))
    notes: list[str] = []
    store = owned(inner, notes=notes)
    state = store.read()
    assert state.owner is None and notes == []                      # reading records nothing
    store.write(state.bumped(), 3)
    store.write(state.bumped().bumped(), 4)
    assert notes == ["state file s.json recorded no environment (it was written before state format 4); it is "
                     "now recorded as the state of environment 'prod' (endpoint https://x.qrveyapp.com)"]
    assert inner.read().owner == PROD


def test_a_new_state_is_recorded_without_a_note():
    notes: list[str] = []
    store = owned(MemoryStateStore(), notes=notes)
    store.write(store.read().bumped(), 0)
    assert notes == [] and store.read().owner == PROD


def test_claim_moves_the_state_and_keeps_everything_else():
    inner = MemoryStateStore()
    owned(inner).write(State(lineage="L", serial=1), 0)
    staging = StateOwner(environment="staging", endpoint=PROD.endpoint)
    assert owned(inner, staging).claim() == PROD
    moved = inner.read()
    assert (moved.owner, moved.lineage, moved.serial) == (staging, "L", 2)
    assert owned(inner, staging).claim() == staging                   # already: nothing written
    assert inner.read().serial == 2
