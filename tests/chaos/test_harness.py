"""The chaos harness itself: each lane's emulator is its own, even when two start at once."""

from __future__ import annotations

import httpx

import chaos_harness
from chaos_harness import Emulator


def test_an_emulator_whose_port_another_took_starts_on_another(tmp_path, monkeypatch):
    """free_port() releases the port it found before the emulator binds it: another lane's
    emulator may take it first. The one that lost the race must not take the other's answers
    for its own (a shared key let one lane's apply write into another lane's emulator)."""
    with Emulator(tmp_path / "first" / "world.json") as first:
        picks = iter([first.port])
        real = chaos_harness.free_port
        monkeypatch.setattr(chaos_harness, "free_port", lambda: next(picks, None) or real())
        with Emulator(tmp_path / "second" / "world.json") as second:
            assert second.port != first.port
            assert "address already in use" in (tmp_path / "second" / "world.log").read_text()
            probe = httpx.get(second.url + chaos_harness.PROBE, headers={"x-api-key": second.api_key})
            assert probe.status_code == 200
            refused = httpx.get(first.url + chaos_harness.PROBE, headers={"x-api-key": second.api_key})
            assert refused.status_code == 401
