"""One environment's state: a store that refuses a state made for another environment or endpoint.

A state records its owner (format 4): the environment name and the endpoint it was made
for. Two environments pointed at one state file, or an environment whose endpoint was
changed to another Qrvey, would otherwise read the other one's records as their own: every
object "gone", created again; or deleted where it should not be. ``OwnedStore`` wraps any
store: ``read`` refuses a state of another owner before anything is done with it, ``write``
records this owner, and ``claim`` is the one way to move a state on purpose
(``qrvey-iac state claim``). A state that records no owner (written before format 4) is
read as this environment's, and the first write records it, with a note saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from qrvey_iac.core.errors import StateError, StateOwnerError
from qrvey_iac.core.state import State, StateOwner

if TYPE_CHECKING:
    from qrvey_iac.ports import StateStore

EMBEDDED = "embedded"        # the endpoint recorded for the in-process emulator (`endpoint: local`)
_DEFAULT_PORTS = {"https": 443, "http": 80}


def endpoint_identity(endpoint: str) -> str:
    """``endpoint`` as recorded and compared: scheme and host in lower case, no credentials,
    no default port, no trailing slash, no query or fragment.

    So ``https://X.qrveyapp.com:443/`` and ``https://x.qrveyapp.com`` are one endpoint, and a
    ``user:password@`` in the URL never reaches the state.
    """
    parts = urlsplit(endpoint.strip())
    if not parts.scheme or not parts.netloc:
        return endpoint.strip()                      # not a URL ("embedded"): as it is
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:
        host = f"[{host}]"                           # an IPv6 address keeps its brackets
    try:
        port = parts.port
    except ValueError:                               # not a port number: kept as written, without credentials
        netloc = parts.netloc.rpartition("@")[2].lower()
    else:
        netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


class OwnedStore:
    """``inner`` (any StateStore) kept to ``owner``; ``where`` names it in messages, ``claim_command``
    is the command that moves it on purpose, ``notify`` receives the note of a first recording."""

    def __init__(self, inner: StateStore, owner: StateOwner, where: str, claim_command: str,
                 notify: Callable[[str], None] | None = None) -> None:
        self.inner = inner
        self.owner = owner
        self.where = where
        self.claim_command = claim_command
        self._notify = notify or (lambda message: None)
        self._unrecorded = False      # the stored state read names no owner: the next write records it

    def exists(self) -> bool:
        return self.inner.exists()

    def compact(self) -> None:
        self.inner.compact()

    def read(self) -> State:
        state = self.inner.read()
        self._check(state.owner)
        self._unrecorded = state.owner is None and self.inner.exists()
        return state

    def write(self, state: State, expected_serial: int) -> None:
        if state.owner != self.owner:
            state = state.model_copy(update={"owner": self.owner})
        self.inner.write(state, expected_serial)
        if self._unrecorded:
            self._unrecorded = False
            self._notify(f"{self.where} recorded no environment (it was written before state format 4); "
                         f"it is now recorded as the state of {self.owner.describe()}")

    def claim(self) -> StateOwner | None:
        """Record this environment and endpoint as the state's owner, whatever it was; the
        previous owner (None: none was recorded). The state is otherwise unchanged."""
        if not self.inner.exists():
            raise StateError(f"{self.where} does not exist: there is no state to claim "
                             "(the first plan or apply of this environment creates it)")
        state = self.inner.read()
        previous = state.owner
        if not _same(previous, self.owner):
            self.inner.write(state.model_copy(update={"owner": self.owner}).bumped(), state.serial)
        return previous

    def _check(self, recorded: StateOwner | None) -> None:
        if recorded is None or _same(recorded, self.owner):
            return
        ours = self.owner
        if recorded.environment != ours.environment:
            raise StateOwnerError(
                f"{self.where} belongs to {recorded.describe()}, not to {ours.describe()}: used here it would "
                "treat the other environment's objects as this one's. Nothing was read from Qrvey or changed. "
                f"Give environment {ours.environment!r} its own state file (state.path in the config); or, "
                f"to move this state to {ours.environment!r} on purpose (the environment was renamed), "
                f"run `{self.claim_command}`.")
        raise StateOwnerError(
            f"{self.where} was made for endpoint {recorded.endpoint}, and environment {ours.environment!r} "
            f"now has endpoint {ours.endpoint}: its records name objects of the other endpoint. Nothing was "
            "read from Qrvey or changed. If it is another Qrvey instance, give it its own state file "
            "(state.path in the config); if it is the same instance at a new address, run "
            f"`{self.claim_command}` to record the new endpoint.")


def _same(recorded: StateOwner | None, ours: StateOwner) -> bool:
    return (recorded is not None and recorded.environment == ours.environment
            and endpoint_identity(recorded.endpoint) == ours.endpoint)
