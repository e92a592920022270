"""Composition: environment -> client (remote or in-process emulator) -> engine."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from qrvey_iac.adapters.config import LOCAL_API_KEY, Environment, load_environment
from qrvey_iac.adapters.manifest_files import load_manifest, load_manifest_async
from qrvey_iac.adapters.qrvey.client import QrveyClient
from qrvey_iac.adapters.qrvey.gateway import QrveyGateway
from qrvey_iac.adapters.state.local import LocalStateStore
from qrvey_iac.adapters.state.lock import LocalLocker
from qrvey_iac.core.manifest import Manifest
from qrvey_iac.core.sealing import Sealer, derive_key
from qrvey_iac.ports import QrveyPort, StateLocker, StateStore

LOCAL_BASE_URL = "http://qrvey-emulator.local"
DEFAULT_PARALLELISM = 10


@dataclass
class Workspace:
    """Everything a command needs, resolved from the flags."""

    environment: Environment
    store: StateStore
    environ: Mapping[str, str]
    locker: StateLocker
    # every secret to mask, shared with the CLI's error boundary: the manifests' ${env:X} values
    # once read, and the API key the CLI adds; the manifests' values alone key the sealer
    known_secrets: set[str] = field(default_factory=set)
    manifest_secrets: set[str] = field(default_factory=set)

    @classmethod
    def open(
        cls, config: str, env: str | None, variables: Mapping[str, Any], known_secrets: set[str] | None = None
    ) -> Workspace:
        environment = load_environment(Path(config), env, variables)
        path = environment.state_path
        known = set() if known_secrets is None else known_secrets
        return cls(environment, LocalStateStore(path), dict(os.environ), LocalLocker(path), known)

    def manifest(self) -> Manifest:
        """The manifest for offline use (validate, state show): its secrets are learnt, but it
        gets no seal key, so no API key is needed (a digest made from it leaves secrets out)."""
        manifest = load_manifest(*self._manifest_source())
        self._learn(manifest)
        return manifest

    async def manifest_async(self) -> Manifest:
        """The manifest, read in slices between other work of the event loop."""
        return self._keyed(await load_manifest_async(*self._manifest_source()))

    def _keyed(self, manifest: Manifest) -> Manifest:
        """The manifest with the seal key of this environment, and its secrets made known to
        the Qrvey client (masked in its logs and errors from here on)."""
        self._learn(manifest)
        if not manifest.secrets:
            return manifest       # no secret: no digest is keyed, no seal key needed
        return replace(manifest, seal_key=self.seal_key())

    def _learn(self, manifest: Manifest) -> None:
        self.known_secrets.update(manifest.secrets)
        self.manifest_secrets.update(manifest.secrets)

    def sealer(self) -> Sealer:
        """The sealer of the manifests read so far (their secrets, this environment's key): the
        one ``Manifest.sealer`` gives, for a plan whose manifest the flow kept to itself."""
        return Sealer(frozenset(self.manifest_secrets), self.seal_key())

    def seal_key(self) -> bytes:
        """Keys every stored digest of a secret (core/sealing.py): derived from the API key, so
        it is never written anywhere (the embedded emulator's key is fixed: see
        docs/architecture.md, "Secrets in stored hashes")."""
        return derive_key(self.environment.api_key(self.environ))

    def _manifest_source(self) -> tuple:
        env = self.environment
        return (env.manifests_dir, env.apps, env.variables, self.environ, Path.cwd(), env.overrides, env.config_file)

    def secrets(self) -> frozenset[str]:
        if self.environment.is_local:
            return frozenset()
        return frozenset({self.environment.api_key(self.environ)})

    @property
    def environment_name(self) -> str:
        return self.environment.name

    def parallelism(self, requested: int | None) -> int:
        return requested or self.environment.parallelism or DEFAULT_PARALLELISM

    @asynccontextmanager
    async def qrvey(self, parallelism: int, rate_limit: float | None = None) -> AsyncIterator[QrveyPort]:
        """The Qrvey port of this environment: HTTP to the endpoint, or the in-process emulator."""
        env = self.environment
        emulator = None
        transport = None
        base_url = env.endpoint
        if env.is_local:
            emulator, transport = _local_emulator(env)
            base_url = LOCAL_BASE_URL
        client = QrveyClient(base_url, env.api_key(self.environ), transport=transport,
                             parallelism=parallelism, routes=env.routes or None,
                             rate_limit=rate_limit or env.rate_limit, secrets=self.known_secrets)
        revision = emulator.world.revision if emulator is not None else None
        try:
            yield QrveyGateway(client)
        finally:
            await client.aclose()
            if emulator is not None and emulator.world.revision != revision:
                emulator.save()   # a command that changed nothing leaves the world file alone (or absent)


def _local_emulator(env: Environment):
    from qrvey_iac.emulator import EmulatorConfig, EmulatorTransport, create_app

    app = create_app(EmulatorConfig(api_key=LOCAL_API_KEY, data_file=env.emulator_data, autosave=False))
    return app.state.emulator, EmulatorTransport(app)
