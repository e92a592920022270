"""Composition: environment -> client (remote or in-process emulator) -> engine."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from qrvey_iac.adapters.config import DEFAULT_CONFIG, LOCAL_API_KEY, Environment, load_environment, read_config
from qrvey_iac.adapters.manifest_files import load_manifest, load_manifest_async
from qrvey_iac.adapters.qrvey.client import QrveyClient
from qrvey_iac.adapters.qrvey.gateway import QrveyGateway
from qrvey_iac.adapters.state.local import LocalStateStore
from qrvey_iac.adapters.state.lock import LocalLocker, resolved_state_path
from qrvey_iac.adapters.state.owned import EMBEDDED, OwnedStore, endpoint_identity
from qrvey_iac.core.manifest import Manifest
from qrvey_iac.core.sealing import Sealer, derive_key
from qrvey_iac.core.state import StateOwner
from qrvey_iac.ports import QrveyPort, StateLocker, StateStore

LOCAL_BASE_URL = "http://qrvey-emulator.local"
DEFAULT_PARALLELISM = 10


@dataclass
class Workspace:
    """Everything a command needs, resolved from the flags."""

    environment: Environment
    store: OwnedStore
    environ: Mapping[str, str]
    locker: StateLocker
    state_path: Path | None     # where the state file really is (a symlink at the configured path resolved);
                                # None for a postgres state
    # every secret to mask, shared with the CLI's error boundary: the manifests' ${env:X} values
    # once read, and the API key the CLI adds; the manifests' values alone key the sealer
    known_secrets: set[str] = field(default_factory=set)
    manifest_secrets: set[str] = field(default_factory=set)
    given_variables: Mapping[str, str] = field(default_factory=dict)   # name -> "--var" or the values file
    new_store: Callable[[], OwnedStore] | None = None    # makes another store object for the same state

    @classmethod
    def open(cls, config: str, env: str | None, variables: Mapping[str, Any],
             notify: Callable[[str], None] | None = None, known_secrets: set[str] | None = None,
             given: Mapping[str, str] | None = None) -> Workspace:
        """``notify`` receives notes for the user (a state recorded as this environment's);
        ``given`` says where each of ``variables`` came from (``--var`` or a values file): the
        manifest load refuses one that no manifest uses and the environment does not declare."""
        environment = load_environment(Path(config), env, variables)
        claim = f"qrvey-iac state claim --env {environment.name}"
        if config != DEFAULT_CONFIG:
            claim += f" --config {config}"
        known = set() if known_secrets is None else known_secrets
        environ = dict(os.environ)
        owner = state_owner(environment)
        if environment.is_postgres:
            # imported here: psycopg takes a third of a second to import, and most commands never need it
            from qrvey_iac.adapters.state.postgres import PostgresDatabase, PostgresLocker, PostgresStateStore

            where = f"state workspace {environment.state_workspace!r} (postgres, DSN in ${environment.state_dsn_env})"
            # the DSN is read when the state is first used (validate never needs it); the CLI masks it
            database = PostgresDatabase(lambda: environment.state_dsn(environ), where, known)

            def new_store() -> OwnedStore:
                return OwnedStore(PostgresStateStore(database, environment.state_workspace), owner, where, claim,
                                  notify)

            locker: StateLocker = PostgresLocker(database, environment.state_workspace)
            return cls(environment, new_store(), environ, locker, None, known, given_variables=dict(given or {}),
                       new_store=new_store)
        path = resolved_state_path(environment.state_path)

        def new_store() -> OwnedStore:
            return OwnedStore(LocalStateStore(path), owner, f"state file {environment.state_path}", claim, notify)

        return cls(environment, new_store(), environ, LocalLocker(path), path, known,
                   given_variables=dict(given or {}), new_store=new_store)

    def reopened_store(self) -> OwnedStore:
        """A second, fresh reader and writer of this environment's state (nothing it read is
        shared with ``store``): what ``state migrate`` verifies a copy through."""
        return self.new_store()

    @property
    def state_location(self) -> str:
        """Where the state is kept, one string per place: two environments with the same one
        share a state."""
        if self.state_path is None:
            return f"postgres:${self.environment.state_dsn_env}:{self.environment.state_workspace}"
        return f"file:{self.state_path}"

    @property
    def emulator_data(self) -> Path:
        """The embedded emulator's world (``endpoint: local``): next to the real state file, so
        whoever shares the state through a symlink shares the world it describes; for a postgres
        state, ``state/<environment>.emulator.json`` in the project (the world stays on this
        machine: the embedded emulator is for trying things out, not for sharing)."""
        return emulator_data_of(self.environment, self.state_path)

    def state_file_at(self, path: Path) -> str | None:
        """What ``path`` is when it holds a state of this project, else None: the state file
        of any environment of the config, its backup, sidecar or lock file, or the embedded
        emulator's world (by real path, or the same file under another name)."""
        real = Path(os.path.realpath(path))
        for file, what in self._state_files().items():
            if real == file or (file.exists() and path.exists() and os.path.samefile(path, file)):
                return what
        return None

    def _state_files(self) -> dict[Path, str]:
        files: dict[Path, str] = {}
        config = read_config(Path(self.environment.config_file))
        for name in config.environments:
            env = self.environment if name == self.environment.name else load_environment(
                Path(self.environment.config_file), name)
            of = f"of environment {name!r}"
            if env.is_postgres:       # no state file: only the embedded emulator's world is here
                if env.is_local:
                    files[Path(os.path.realpath(emulator_data_of(env, None)))] = f"the embedded emulator's world {of}"
                continue
            state = Path(os.path.realpath(env.state_path))
            files[state] = f"the state file {of}"
            files[state.with_name(state.name + ".backup")] = f"the state backup {of}"
            files[state.with_name(state.name + ".wal")] = f"the state's write-ahead sidecar {of}"
            files[state.with_name(state.name + ".lock")] = f"the state lock file {of}"
            if env.is_local:
                files[state.with_name(f"{name}.emulator.json")] = f"the embedded emulator's world {of}"
        return files

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
        return (env.manifests_dir, env.apps, env.variables, self.environ, Path.cwd(), env.overrides, env.config_file,
                self.given_variables, env.declared_variables, env.name)

    def secrets(self) -> frozenset[str]:
        if self.environment.is_local:
            return frozenset()
        return frozenset({self.environment.api_key(self.environ)})

    @property
    def environment_name(self) -> str:
        return self.environment.name

    @property
    def config_file(self) -> str:
        return self.environment.config_file

    @property
    def request_timeout(self) -> float:
        return self.environment.request_timeout

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
            emulator, transport = _local_emulator(self.emulator_data)
            base_url = LOCAL_BASE_URL
        client = QrveyClient(base_url, env.api_key(self.environ), transport=transport,
                             parallelism=parallelism, timeout=env.request_timeout, routes=env.routes or None,
                             rate_limit=rate_limit or env.rate_limit, secrets=self.known_secrets,
                             deadline=env.call_deadline, max_answer_bytes=env.max_answer_bytes,
                             key_name=env.api_key_env or "")
        revision = emulator.world.revision if emulator is not None else None
        try:
            yield QrveyGateway(client)
        finally:
            await client.aclose()
            if emulator is not None and emulator.world.revision != revision:
                emulator.save()   # a command that changed nothing leaves the world file alone (or absent)


def emulator_data_of(environment: Environment, state_path: Path | None) -> Path:
    """Where the embedded emulator of ``environment`` keeps its world: beside the real state
    file ``state_path``; under the project's ``state/`` folder for a postgres state (None)."""
    name = f"{environment.name}.emulator.json"
    if state_path is None:
        return environment.root / "state" / name
    return state_path.with_name(name)


def state_owner(environment: Environment) -> StateOwner:
    """What a state of ``environment`` records as its owner: its name and its endpoint."""
    endpoint = EMBEDDED if environment.is_local else endpoint_identity(environment.endpoint)
    return StateOwner(environment=environment.name, endpoint=endpoint)


def _local_emulator(data_file: Path):
    from qrvey_iac.emulator import EmulatorConfig, EmulatorTransport, create_app

    app = create_app(EmulatorConfig(api_key=LOCAL_API_KEY, data_file=data_file, autosave=False))
    return app.state.emulator, EmulatorTransport(app)
