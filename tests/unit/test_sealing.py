"""Stored digests of secrets are keyed, and secret ids are recorded concealed (issue 12, point 5).

A wrong program would store a plain or salted hash (reversible for a short secret by trying
every candidate), record an unmanaged source's id from ${env:X} in clear in the journal or the
state, or lose the ability to see a secret change.
"""

from __future__ import annotations

import pytest
from fakes.qrvey import FakeQrvey
from fakes.state import MemoryStateStore

from qrvey_iac.core.diff import canonical_hash
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.kinds.view import DatasetViewSpec
from qrvey_iac.core.manifest import Manifest, Resource
from qrvey_iac.core.sealing import MASK, PLAIN, Sealer, derive_key
from qrvey_iac.engine import Engine

KEY = derive_key("the-api-key")
SECRET = "Zq7src"
DOCUMENT = {"name": "Orders", "customAttributes": {"password": SECRET}}


def test_a_document_without_secrets_keeps_its_plain_hash():
    sealer = Sealer(frozenset({SECRET}), KEY)
    plain = {"name": "Orders"}
    assert sealer.digest(plain) == canonical_hash(plain) == PLAIN.digest(plain)


def test_a_document_with_a_secret_is_keyed_and_still_tells_a_changed_secret():
    sealer = Sealer(frozenset({SECRET}), KEY)
    digest = sealer.digest(DOCUMENT)
    assert digest != canonical_hash(DOCUMENT)
    other = {"name": "Orders", "customAttributes": {"password": "Zq7srd"}}
    assert Sealer(frozenset({"Zq7srd"}), KEY).digest(other) != digest
    assert Sealer(frozenset({SECRET}), derive_key("another-api-key")).digest(DOCUMENT) != digest
    assert sealer.digest(DOCUMENT) == digest           # stable from run to run


def test_a_secret_inside_a_longer_value_counts_at_any_length():
    sealer = Sealer(frozenset({"42"}), KEY)
    document = {"url": "postgres://u:42@host"}
    assert sealer.holds_secret(document)
    assert sealer.digest(document) != canonical_hash(document)


def test_a_number_read_through_env_counts_as_a_secret():
    sealer = Sealer(frozenset({"5432"}), KEY)
    assert sealer.holds_secret({"port": 5432}) and not sealer.holds_secret({"port": 5433, "on": True})
    assert sealer.digest({"port": 5432}) != canonical_hash({"port": 5432})
    assert Sealer(frozenset({"5432"})).digest({"port": 5432}) == canonical_hash({"port": MASK})


def test_without_a_key_secrets_are_left_out_not_hashed_in_clear():
    sealer = Sealer(frozenset({SECRET}))
    assert sealer.digest(DOCUMENT) == canonical_hash({"name": "Orders", "customAttributes": {"password": MASK}})
    assert sealer.conceal(SECRET) == MASK


def test_an_id_is_concealed_by_a_keyed_digest_and_compared_through_it():
    sealer = Sealer(frozenset({SECRET}), KEY)
    concealed = sealer.conceal(SECRET)
    assert concealed.startswith("(sensitive:") and SECRET not in concealed
    assert sealer.same(concealed, SECRET) and not sealer.same(concealed, "other-id")
    assert sealer.same(SECRET, SECRET)                     # recorded in clear by an older release
    assert sealer.conceal("not-secret") == "not-secret"
    assert sealer.conceal_ids({"appId": "a-1", "datasetId": SECRET}) == {"appId": "a-1", "datasetId": concealed}
    managed = {"address": "dataset.orders", "datasetId": "uuid-Zq7src"}   # ids from the state: kept
    assert sealer.conceal_ids(managed) == managed
    assert repr(sealer) == "Sealer(1 secrets, key=set)"


def test_fingerprints_are_keyed_but_absent_stays_readable():
    sealer = Sealer(frozenset({SECRET}), KEY)
    assert sealer.pin("absent") == "absent"
    assert sealer.pin("abc") != "abc" and sealer.pin("abc") == sealer.pin("abc")
    assert PLAIN.pin("abc") == "abc"


# -- the engine: the journal and the state never hold a secret id ----------------------------

PARTNER = AppRef("u-partner", "a-partner-Zq7")       # its appId and datasetId come from ${env:X}
SOURCE_ID = "src-Zq7-partner"
TARGET = AppRef("u2", "a-emea")


class RecordingStore(MemoryStateStore):
    """Every text ever written: the journal entries of a create are gone by the end."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def write(self, state, expected_serial):
        super().write(state, expected_serial)
        self.texts.append(self.text)


def partner_view() -> Resource:
    spec = DatasetViewSpec.model_validate({"app": "emea", "name": "Partner orders", "source": {
        "appId": PARTNER.app_id, "userId": PARTNER.user_id, "datasetId": SOURCE_ID}})
    return Resource("view.partner", "DatasetView", TARGET, "emea", spec, ())


def partner_source(qrvey: FakeQrvey) -> None:
    qrvey.objects[SOURCE_ID] = {
        "datasetId": SOURCE_ID, "userId": PARTNER.user_id, "appId": PARTNER.app_id, "isPublic": True,
        "connectionId": "conn-partner", "columns": [{"columnName": "Total", "columnType": "NUMBER"}]}


def keyed(resources: list[Resource]) -> Manifest:
    return Manifest(resources={r.address: r for r in resources}, digest="d",
                    secrets=frozenset({SOURCE_ID, PARTNER.app_id}), seal_key=KEY)


@pytest.mark.anyio
@pytest.mark.parametrize("fault", ["none", "fail", "lose_answer"])
async def test_a_view_over_a_secret_source_is_journaled_and_recorded_concealed(fault):
    qrvey, store = FakeQrvey(), RecordingStore()
    partner_source(qrvey)
    if fault != "none":
        getattr(qrvey, fault)("clone_view")
    engine = Engine(qrvey, store, request_timeout=0.01)   # a lost clone is waited out: not for a minute here
    wanted = keyed([partner_view()])
    plan, _ = await engine.plan(wanted, store.read(), "test")
    await engine.apply(plan, store.read(), wanted.sealer)
    views = [o for o in qrvey.objects.values() if o.get("datasetType") == "VIEW"]
    assert len(views) == 1 and views[0]["sourceDataset"]["datasetId"] == SOURCE_ID   # the clear ids were used
    assert any('"journal": [\n    {' in text for text in store.texts)               # a journal entry was written
    for text in store.texts:
        assert SOURCE_ID not in text and PARTNER.app_id not in text
    recorded = store.read().resources["view.partner"]
    assert wanted.sealer.same(recorded.source["datasetId"], SOURCE_ID)
    again, _ = await engine.plan(wanted, store.read(), "test")
    assert not again.has_changes                                    # the concealed source still matches


class CrashingList(FakeQrvey):
    """The process "dies" (an unexpected error) when apply lists the app to settle a lost answer."""

    crash = True

    async def list_app(self, app):
        if self.crash:
            raise RuntimeError("killed")
        return await super().list_app(app)


@pytest.mark.anyio
async def test_an_interrupted_create_settled_later_records_the_source_concealed():
    qrvey, store = CrashingList(), RecordingStore()
    partner_source(qrvey)
    qrvey.lose_answer("clone_view")
    wanted = keyed([partner_view()])
    qrvey.crash = False                 # plan lists the app too (for an object carrying the marker)
    plan, _ = await Engine(qrvey, store).plan(wanted, store.read(), "test")
    qrvey.crash = True
    with pytest.raises(RuntimeError):
        await Engine(qrvey, store).apply(plan, store.read(), wanted.sealer)
    assert store.read().journal                                       # left for the next run
    qrvey.crash = False
    settled = await Engine(qrvey, store).settle_journal(store.read(), wanted)
    recorded = settled.state.resources["view.partner"]
    assert SOURCE_ID not in recorded.model_dump_json() and PARTNER.app_id not in recorded.model_dump_json()
    assert wanted.sealer.same(recorded.source["datasetId"], SOURCE_ID)
    assert wanted.sealer.same(recorded.source["appId"], PARTNER.app_id)
    for text in store.texts:
        assert SOURCE_ID not in text and PARTNER.app_id not in text


@pytest.mark.anyio
async def test_what_an_older_release_recorded_in_clear_is_sealed_by_the_next_apply():
    """A state of the release before: the source id in clear and a plain hash of a document
    holding a secret. The next apply that changes anything rewrites both."""
    from qrvey_iac.core.kinds.dataset import DatasetSpec
    from qrvey_iac.core.kinds.view import VIEW

    qrvey, store = FakeQrvey(), RecordingStore()
    partner_source(qrvey)
    plain = Manifest(resources={"view.partner": partner_view()}, digest="d")      # as the old release did
    plan, _ = await Engine(qrvey, store).plan(plain, store.read(), "test")
    await Engine(qrvey, store).apply(plan, store.read())
    legacy = store.read().resources["view.partner"]
    assert legacy.source["datasetId"] == SOURCE_ID
    assert legacy.applied_hash == VIEW.applied_hash(partner_view().desired)

    other = Resource("dataset.other", "Dataset", AppRef("u1", "a-sales"), "sales", DatasetSpec.model_validate({
        "app": "sales", "name": "Other",
        "datasources": [{"name": "O", "connectionId": "c1", "connectorType": "MSSQL_LIVE", "tableName": "o"}],
        "columns": [{"columnName": "Total", "columnType": "NUMBER"}]}), ())
    wanted = Manifest(resources={r.address: r for r in (partner_view(), other)}, digest="d", seal_key=KEY,
                      secrets=frozenset({SOURCE_ID, PARTNER.app_id, "Partner orders"}))   # the name too
    # a change elsewhere (dataset.other): the apply writes the state
    plan, _ = await Engine(qrvey, store).plan(wanted, store.read(), "test")
    assert [a.address for a in plan.changes] == ["dataset.other"]        # the clear record still matches
    await Engine(qrvey, store).apply(plan, store.read(), wanted.sealer)
    resealed = store.read().resources["view.partner"]
    assert SOURCE_ID not in store.text and PARTNER.app_id not in store.text
    assert wanted.sealer.same(resealed.source["datasetId"], SOURCE_ID)
    assert resealed.applied_hash == VIEW.applied_hash(partner_view().desired, wanted.sealer) != legacy.applied_hash
    again, _ = await Engine(qrvey, store).plan(wanted, store.read(), "test")
    assert not again.has_changes
