"""Digests that cover secret values without letting anyone recover them offline.

A hash of a document is stored in the state (``applied_hash``, journal entries) and in
saved plans (``seals``, ``fingerprints``). A plain or salted SHA-256 of a document that
holds a short secret (a 6-digit PIN, an 8-letter password) is reversible: whoever reads
the file tries every candidate. So a digest of anything that holds a value read through
``${env:X}`` is an HMAC keyed with a key that is never written anywhere: derived, each
run, from the environment's API key (docs/architecture.md, "Secrets in stored hashes").

- A document that holds no secret gets the plain ``canonical_hash`` it always had, so the
  state of a manifest without secrets does not change.
- Without a key (a unit test, a Sealer built by hand), secret values are left out: cut
  from the document before it is hashed. Nothing reversible either, but a change of a
  secret alone is then not seen.
- An id that must be recorded (an unmanaged view source's ``datasetId`` read through
  ``${env:X}``) is stored concealed: ``(sensitive:<keyed digest>)``, compared by
  concealing the manifest's value again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from qrvey_iac.core.diff import canonical_hash

MASK = "(sensitive)"
KEY_PURPOSE = b"qrvey-iac seal v1"
ABSENT = "absent"


def derive_key(api_key: str) -> bytes:
    """The seal key of an environment: a one-way function of its API key (never stored)."""
    return hmac.new(api_key.encode("utf-8"), KEY_PURPOSE, hashlib.sha256).digest()


def _canonical(document: Any) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Sealer:
    secrets: frozenset[str] = frozenset()
    key: bytes = b""

    def __repr__(self) -> str:
        return f"Sealer({len(self.secrets)} secrets, key={'set' if self.key else 'none'})"

    def holds_secret(self, value: Any) -> bool:
        """Whether any string in ``value`` contains a secret (of any length)."""
        if not self.secrets:
            return False
        if isinstance(value, dict):
            return any(self.holds_secret(k) or self.holds_secret(v) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return any(self.holds_secret(v) for v in value)
        if isinstance(value, str):
            return any(secret and secret in value for secret in self.secrets)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value) in self.secrets       # ${env:PORT} validated into a number
        return False

    def _keyed(self, text: str) -> str:
        return hmac.new(self.key, text.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def digest(self, document: Any) -> str:
        """``canonical_hash`` of a document without secrets; keyed (or secret-free) otherwise."""
        if not self.holds_secret(document):
            return canonical_hash(document)
        if self.key:
            return self._keyed(_canonical(document))
        return canonical_hash(self._cut(document))

    def conceal(self, value: str) -> str:
        """A value to record: itself when it holds no secret, else a keyed digest of it."""
        if not self.holds_secret(value):
            return value
        return f"(sensitive:{self._keyed(value)})" if self.key else MASK

    def conceal_ids(self, ids: dict[str, str]) -> dict[str, str]:
        """A source reference to record, each id concealed. A managed source (with an
        ``address``) is kept as it is: its ids come from the state, not from the manifests."""
        if "address" in ids:
            return ids
        return {k: self.conceal(v) for k, v in ids.items()}

    def same(self, recorded: str | None, value: str) -> bool:
        """Whether a recorded value (concealed, or in clear by an older release) is ``value``."""
        return recorded == self.conceal(value) or recorded == value

    def pin(self, fingerprint: str) -> str:
        """A live object's fingerprint as a saved plan stores it: keyed, so a plan file does
        not hold a plain hash of an object that may carry a secret."""
        if not self.key or fingerprint == ABSENT:
            return fingerprint
        return self._keyed(fingerprint)

    def _cut(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {self._cut(k): self._cut(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._cut(v) for v in value]
        if isinstance(value, str):
            for secret in sorted((s for s in self.secrets if s), key=len, reverse=True):
                value = value.replace(secret, MASK)
        elif self.holds_secret(value):
            return MASK                              # a number read through ${env:X}
        return value


PLAIN = Sealer()
