"""qrvey-iac.yaml: environments, apps, variables, endpoint and state location."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qrvey_iac.adapters.validation import problems_from
from qrvey_iac.adapters.yaml_source import parse_documents, read_text
from qrvey_iac.core.errors import ConfigError, Problem
from qrvey_iac.core.keys import AppRef

DEFAULT_CONFIG = "qrvey-iac.yaml"
LOCAL = "local"
LOCAL_API_KEY = "qrvey-iac-embedded-emulator"   # long enough that redacting it never hides words
_HOST_LABEL = re.compile(r"[\w-]+")       # letters (any script: IDN), digits, '_' and '-'


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AppConfig(Frozen):
    userId: str = Field(min_length=1)
    appId: str = Field(min_length=1)


class StateConfig(Frozen):
    backend: Literal["local", "postgres"] = "local"
    path: str | None = Field(default=None, description="local: the state file (default: state/<environment>.json)")
    dsnEnv: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                               description="postgres: the environment variable holding the DSN (never the DSN itself)")
    workspace: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
                                  description="postgres: the state's name in the database (default: the environment name)")


class EnvironmentConfig(Frozen):
    endpoint: str = Field(description="'local' (in-process emulator) or the instance's https:// URL")
    apiKeyEnv: str | None = Field(default=None, description="Environment variable holding the API key")
    apps: dict[str, AppConfig] = Field(min_length=1)
    variables: dict[str, Any] = Field(default_factory=dict)
    state: StateConfig = StateConfig()
    routes: dict[str, str] = Field(default_factory=dict, description="Overrides of unconfirmed API paths")
    parallelism: int | None = Field(default=None, ge=1, le=256)
    rateLimit: float | None = Field(default=None, gt=0, description="Max API requests per second")
    callDeadline: float = Field(default=120.0, gt=0, le=3600,
                                description="Seconds one API call may take, connecting to the last byte of its answer")
    maxAnswerMiB: int = Field(default=64, ge=1, le=4096, description="The largest API answer read, in MiB")
    requestTimeout: float = Field(
        default=30.0, gt=0, le=3600,
        description="Seconds to wait for each answer; a create left unanswered is taken as possibly still "
                    "landing for twice this long",
    )
    overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-resource spec fields for this environment, e.g. {dataset.orders: {protect: true}}",
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if value == LOCAL:
            return value
        return check_endpoint(value).rstrip("/")


def check_endpoint(value: str) -> str:
    """An instance's base URL: http(s), a host, a port in 1-65535 if any, a plain path (a proxy's
    prefix) and nothing else (``user:password@`` is allowed: a proxy's, never recorded in the
    state); ValueError says what is wrong. Checked when the config loads, so a
    bad URL never reaches a request."""
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("the URL contains spaces or control characters")
    try:
        parts = urlsplit(value)
    except ValueError as exc:          # a bracketed host that is not an IPv6 address
        raise ValueError(f"the URL cannot be read: {exc}") from None
    if parts.scheme not in ("https", "http") or not value.startswith(f"{parts.scheme}://"):
        raise ValueError("expected 'local' or an http(s):// URL")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if not _valid_host(parts.hostname):
        raise ValueError(f"the host {parts.hostname!r} is not a valid host name or IP address")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"the port in {parts.netloc!r} is not a number from 1 to 65535") from None
    if port == 0 or (port is None and parts.netloc.endswith(":")):
        raise ValueError(f"the port in {parts.netloc!r} is not a number from 1 to 65535")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValueError("the URL must not have a query (?...) or a fragment (#...)")
    if any(segment in ("", ".", "..") for segment in parts.path.rstrip("/").split("/")[1:]):
        raise ValueError(f"the URL's path {parts.path!r} has an empty, '.' or '..' segment")
    return value


def _valid_host(host: str) -> bool:
    if ":" in host:                      # an IPv6 address (the brackets are gone)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    labels = host.removesuffix(".").split(".")
    return all(label and len(label) <= 63 and _HOST_LABEL.fullmatch(label) for label in labels)


class ProjectConfig(Frozen):
    manifests: str = "manifests"
    defaultEnvironment: str | None = None
    environments: dict[str, EnvironmentConfig] = Field(min_length=1)


@dataclass(frozen=True)
class Environment:
    name: str
    root: Path
    endpoint: str
    api_key_env: str | None
    apps: dict[str, AppRef]
    variables: dict[str, Any]
    state_path: Path
    manifests_dir: Path
    routes: dict[str, str] = field(default_factory=dict)
    parallelism: int | None = None
    rate_limit: float | None = None
    request_timeout: float = 30.0
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    config_file: str = DEFAULT_CONFIG
    call_deadline: float = 120.0
    max_answer_bytes: int = 64 * 1024 * 1024
    declared_variables: tuple[str, ...] = ()    # the names its own ``variables`` gives (before --var)
    state_backend: str = "local"                # "local": the file at state_path; "postgres": below
    state_dsn_env: str | None = None            # postgres: the variable holding the DSN
    state_workspace: str = ""                   # postgres: the state's name in the database

    @property
    def is_local(self) -> bool:
        return self.endpoint == LOCAL

    def api_key(self, environ: Mapping[str, str]) -> str:
        if self.is_local:
            return LOCAL_API_KEY
        if not self.api_key_env:
            raise ConfigError([Problem(self.config_file, None, f"environments.{self.name}.apiKeyEnv",
                                       "required for a remote endpoint")])
        key = environ.get(self.api_key_env, "")
        if not key:
            raise ConfigError([Problem(self.config_file, None, f"environments.{self.name}.apiKeyEnv",
                                       f"environment variable {self.api_key_env} is not set")])
        flaw = api_key_flaw(key)
        if flaw:      # said before any request: an HTTP library's error would quote the header, key and all
            raise ConfigError([Problem(self.config_file, None, f"environments.{self.name}.apiKeyEnv",
                                       f"environment variable {self.api_key_env} {flaw} (its value is not "
                                       "shown); set it to the key alone, e.g. without a trailing newline")])
        return key

    @property
    def is_postgres(self) -> bool:
        return self.state_backend == "postgres"

    def state_dsn(self, environ: Mapping[str, str]) -> str:
        """The PostgreSQL DSN of a postgres state, from its variable (the value is never shown)."""
        field = f"environments.{self.name}.state.dsnEnv"
        dsn = environ.get(self.state_dsn_env or "", "")
        if not dsn.strip():
            raise ConfigError([Problem(self.config_file, None, field,
                                       f"environment variable {self.state_dsn_env} is not set: set it to the "
                                       "DSN of the state's PostgreSQL database, e.g. "
                                       "postgresql://USER:PASSWORD@HOST:5432/DATABASE")])
        return dsn


def api_key_flaw(key: str) -> str | None:
    """What makes ``key`` unusable as an ``x-api-key`` header value, never quoting it."""
    for char in key:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):     # CR, LF, NUL, DEL, zero-width...
            return f"holds a control character (U+{ord(char):04X})"
        if ord(char) > 0x7E:
            return "holds a character outside printable ASCII"
    if key != key.strip():
        return "starts or ends with a space"
    return None


def read_config(path: Path) -> ProjectConfig:
    shown = str(path)
    if not path.exists() and not path.is_symlink():
        raise ConfigError([Problem(shown, None, "", "config file not found: run from the folder "
                                   "that holds qrvey-iac.yaml or pass --config FILE")])
    text, problems = read_text(path, shown)
    if text is None:
        raise ConfigError(problems)
    documents, problems = parse_documents(text, shown)
    if problems:
        raise ConfigError(problems)
    if len(documents) != 1 or not isinstance(documents[0].data, dict):
        raise ConfigError([Problem(shown, 1, "", "expected one YAML mapping")])
    try:
        config = ProjectConfig.model_validate(documents[0].data)
    except ValidationError as exc:
        raise ConfigError(problems_from(exc, documents[0], model=ProjectConfig)) from None
    problems = [Problem(shown, documents[0].line_of(path), ".".join(path), message)
                for path, message in _state_problems(config)]
    if problems:
        raise ConfigError(problems)
    return config


def _state_problems(config: ProjectConfig) -> list[tuple[tuple[str, ...], str]]:
    """The state blocks whose fields do not fit their backend, as (path, message)."""
    problems = []
    for name, env in config.environments.items():
        state = env.state
        at = ("environments", name, "state")
        if state.backend == "postgres":
            if state.dsnEnv is None:
                problems.append(((*at, "dsnEnv"), "required for backend postgres: the name of the environment "
                                 "variable that holds the database's DSN, e.g. dsnEnv: QRVEY_IAC_STATE_DSN"))
            if state.path is not None:
                problems.append(((*at, "path"), "a postgres state has no file: remove path (the state is "
                                 "named by workspace, default the environment name)"))
        else:
            for field in ("dsnEnv", "workspace"):
                if getattr(state, field) is not None:
                    problems.append(((*at, field), f"{field} is for backend postgres; this state is a local "
                                     "file (set backend: postgres, or remove it)"))
    return problems


def load_environment(
    path: Path, name: str | None, overrides: Mapping[str, Any] | None = None
) -> Environment:
    config = read_config(path)
    chosen = name or config.defaultEnvironment or (next(iter(config.environments)) if len(config.environments) == 1 else None)
    if chosen is None or chosen not in config.environments:
        known = ", ".join(sorted(config.environments))
        what = f"unknown environment {chosen!r}" if chosen else "no --env given and no defaultEnvironment"
        raise ConfigError([Problem(str(path), None, "environments", f"{what} (known: {known})")])
    env = config.environments[chosen]
    root = path.parent
    state_path = root / (env.state.path or f"state/{chosen}.json")
    return Environment(
        name=chosen,
        root=root,
        endpoint=env.endpoint,
        api_key_env=env.apiKeyEnv,
        apps={alias: AppRef(a.userId, a.appId) for alias, a in env.apps.items()},
        variables={**env.variables, **(overrides or {})},
        state_path=state_path,
        manifests_dir=root / config.manifests,
        routes=dict(env.routes),
        parallelism=env.parallelism,
        rate_limit=env.rateLimit,
        request_timeout=env.requestTimeout,
        overrides=dict(env.overrides),
        config_file=str(path),
        call_deadline=env.callDeadline,
        max_answer_bytes=env.maxAnswerMiB * 1024 * 1024,
        declared_variables=tuple(env.variables),
        state_backend=env.state.backend,
        state_dsn_env=env.state.dsnEnv,
        state_workspace=env.state.workspace or chosen,
    )
