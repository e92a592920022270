"""The one error tree of qrvey-iac.

Every error a user can meet is a ``QrveyIacError``. Subclasses carry structured
fields (address, file, line, status) and an exit code; only ``cli.py`` turns
them into ``Error: ...`` lines.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


class QrveyIacError(Exception):
    """Root of every error qrvey-iac raises on purpose.

    ``nothing_sent``: the error proves that the call never reached Qrvey, or was refused
    before anything was done, on every attempt (a connection refused, a DNS failure, a 401 or
    403): a write that failed so left nothing to settle. Set by the Qrvey client; False
    whenever an attempt may have been acted on.
    """

    exit_code = 1
    nothing_sent = False


@dataclass(frozen=True)
class Problem:
    """One precise complaint about an input file."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The one of ``candidates`` close enough to ``word`` to be what was meant, or None."""
    close = difflib.get_close_matches(word, sorted(set(candidates) - {word}), n=1, cutoff=0.75)
    return close[0] if close else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when one of ``candidates`` is close to ``word``, else ``""``."""
    close = closest(word, candidates)
    return f" (did you mean {close!r}?)" if close else ""


def did_you_mean_address(address: str, addresses: Iterable[str]) -> str:
    """"did you mean" for an unknown address (``kind.name``): a close name of the same kind
    (the shared prefix would make every name of it look close), else, for a prefix no address
    has, a close address."""
    prefix, _, name = address.partition(".")
    addresses = set(addresses)
    same_kind = {known.partition(".")[2]: known for known in addresses if known.partition(".")[0] == prefix}
    if same_kind:
        close = closest(name, same_kind)
        return f" (did you mean {same_kind[close]!r}?)" if close else ""
    return did_you_mean(address, addresses)


class InputError(QrveyIacError):
    """Bad manifests, config, variables: carries every problem found at once."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...], summary: str = "") -> None:
        self.problems = tuple(problems)
        lines = [str(p) for p in self.problems]
        if summary:
            lines.append(summary)
        super().__init__("\n".join(lines))


class ManifestError(InputError):
    """The manifests are invalid."""


class ConfigError(InputError):
    """qrvey-iac.yaml, a values file or a --var is invalid."""


class DependencyCycleError(QrveyIacError):
    def __init__(self, path: list[str]) -> None:
        self.path = tuple(path)
        super().__init__("dependency cycle: " + " -> ".join(path))


class StateError(QrveyIacError):
    """The state file cannot be read, written or trusted."""


class StateLockedError(StateError):
    """Another command holds the state's lock."""


class StateOwnerError(StateError):
    """The state was made for another environment or endpoint than the command's."""


class StateConflictError(StateError):
    """A write was refused: the stored state is not the one the writer read (another writer)."""

    def __init__(self, message: str, expected_serial: int, stored_serial: int | None) -> None:
        self.expected_serial = expected_serial
        self.stored_serial = stored_serial
        super().__init__(message)


class StateWriteError(StateError):
    """The store could not write (a full disk, a read-only folder): its message names the file;
    what was stored before is untouched."""


class PlanError(QrveyIacError):
    """A plan cannot be built, loaded or applied."""


class StalePlanError(PlanError):
    """A saved plan no longer matches the state or the live objects."""


class ProtectedResourceError(PlanError):
    """A plan would delete or replace a resource marked ``protect: true``."""


class ApplyError(QrveyIacError):
    """An apply stopped: what is done is in the state, what is not is listed."""


class StoppedError(ApplyError):
    """An apply stopped by a signal (SIGTERM, SIGINT): the exit code is 128 + its number."""

    def __init__(self, message: str, exit_code: int) -> None:
        self.exit_code = exit_code
        super().__init__(message)


class ApiError(QrveyIacError):
    """The Qrvey API answered with an error."""

    def __init__(self, status: int, message: str, method: str, path: str) -> None:
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        super().__init__(f"Qrvey API {method} {path} -> HTTP {status}: {message}")


class AuthError(ApiError):
    """401/403: the API key is missing or wrong (or may not act on that app); answered before
    anything was done."""

    def naming(self, endpoint: str, key_name: str) -> AuthError:
        """This error said as what a user must check: the endpoint, and where its key comes from
        (``key_name``: the environment's apiKeyEnv). Never the key."""
        named = AuthError(self.status, self.message, self.method, self.path)
        where = f"the environment variable {key_name}" if key_name else "the environment's API key"
        named.args = (f"Qrvey refused the API key (HTTP {self.status}) for {endpoint} ({self.method} {self.path}: "
                      f"{self.message}): check {where}",)
        return named


class NotFoundError(ApiError):
    """404: the object does not exist."""


class BadRequestError(ApiError):
    """400: the server refused the body."""


class RateLimitedError(ApiError):
    """429 that outlived every retry."""


class ServerError(ApiError):
    """5xx that outlived every retry."""


class UnusableAnswerError(ApiError):
    """An answer the tool cannot trust: a 2xx whose body is empty, ``null``, not JSON, not an
    object, error-shaped or about another object than the one asked for; or any answer larger
    than the size cap. A write that got one may have landed: its journal entry is kept."""


class TransportError(QrveyIacError):
    """The network failed (refused, reset, timed out) and retries ran out. ``nothing_sent``
    when no attempt reached the server (each failed to connect)."""

    def __init__(self, method: str, path: str, reason: str) -> None:
        self.method = method
        self.path = path
        self.reason = reason
        super().__init__(f"Qrvey API {method} {path}: {reason}")


class OutcomeUnknownError(QrveyIacError):
    """A non-idempotent write was sent but no answer came back.

    The server may or may not have applied it; retrying blindly could make a
    duplicate. The caller settles it (a GET for a chosen id, a list for a view).
    """

    def __init__(self, method: str, path: str, reason: str) -> None:
        self.method = method
        self.path = path
        self.reason = reason
        super().__init__(
            f"Qrvey API {method} {path}: outcome unknown ({reason}); "
            "the write may or may not have been applied"
        )


class UndecidedError(QrveyIacError):
    """The outcome of a journaled write cannot be decided (yet): a human must look."""


class RouteConfigError(ConfigError):
    """An environment's endpoint route override is unknown or malformed."""


class DatasetLoadError(QrveyIacError):
    """A dataset load did not reach a loaded state."""

    def __init__(self, dataset_id: str, status: str, message: str) -> None:
        self.dataset_id = dataset_id
        self.status = status
        super().__init__(message)


class LoadFailedError(DatasetLoadError):
    """The dataset's status became FAILED."""

    def __init__(self, dataset_id: str, status: str, detail: str = "", address: str = "") -> None:
        suffix = f": Qrvey says: {detail}" if detail else ""
        named = f"{address} (dataset {dataset_id})" if address else f"dataset {dataset_id}"
        super().__init__(dataset_id, status, f"{named} failed to load (status {status}){suffix}")


class LoadTimeoutError(DatasetLoadError):
    """The dataset was still loading when the wait ran out."""

    def __init__(self, dataset_id: str, status: str, waited: float, address: str = "") -> None:
        self.waited = waited
        named = f"{address} (dataset {dataset_id})" if address else f"dataset {dataset_id}"
        later = (" (--load-timeout); the load goes on in Qrvey: the next plan or apply waits for it, "
                 "or pass a longer --load-timeout") if address else ""
        super().__init__(dataset_id, status, f"{named} still {status} after waiting {waited:.0f} s{later}")
