"""The loaded, resolved set of resources a plan is built from."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.models import DatasetSpec, DatasetViewSpec, ExternalSource


@dataclass(frozen=True)
class Resource:
    """One manifest document, with its app resolved and where it came from."""

    address: str
    kind: str                      # "Dataset" | "DatasetView"
    app: AppRef
    app_alias: str
    spec: DatasetSpec | DatasetViewSpec
    depends_on: tuple[str, ...]    # managed addresses this one needs first
    file: str = ""
    line: int = 0

    @functools.cached_property
    def desired(self) -> dict[str, Any]:
        """The managed document (diff.desired_document), built once per resource: the manifest
        loader builds it in idle turns while the refresh waits; the plan reads it. Read-only."""
        from qrvey_iac.core.diff import desired_document   # diff imports this module

        return desired_document(self)

    @property
    def protect(self) -> bool:
        return self.spec.protect

    @property
    def source_address(self) -> str | None:
        if isinstance(self.spec, DatasetViewSpec) and isinstance(self.spec.source, str):
            return self.spec.source
        return None

    @property
    def external_source(self) -> ExternalSource | None:
        if isinstance(self.spec, DatasetViewSpec) and isinstance(self.spec.source, ExternalSource):
            return self.spec.source
        return None


@dataclass(frozen=True)
class Manifest:
    resources: dict[str, Resource] = field(default_factory=dict)
    digest: str = ""
    secrets: frozenset[str] = frozenset()   # values read through ${env:X}: masked in output
