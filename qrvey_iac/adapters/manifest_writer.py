"""Writing exported manifests: one YAML file per app, the same bytes for the same documents.

``ManifestFolder`` checks the folder before anything is read from Qrvey (``check``), writes
every file to a temp file beside its place (``stage``), and only then, once the state holds
the records, renames them into place (``publish``); ``discard`` removes what was staged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from qrvey_iac.adapters.files import fsync_folder, write_temp
from qrvey_iac.core.errors import ConfigError, Problem


def manifest_text(documents: list[dict[str, Any]], header: str) -> str:
    """The documents as one YAML stream, keys in the order given, after a ``#`` header line.
    PyYAML quotes what would read back as another type (``"on"``, ``"2024-05-01"``)."""
    parts = [yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)
             for document in documents]
    return f"# {header}\n" + "---\n".join(parts)


class ManifestFolder:
    def __init__(self, folder: Path, force: bool, shown: str) -> None:
        self.folder = folder
        self.force = force
        self.shown = shown            # the folder as the user gave it, for messages
        self._staged: dict[Path, Path] = {}

    def path(self, alias: str) -> Path:
        return self.folder / f"{alias}.yaml"

    def check(self, aliases: list[str]) -> None:
        """Refuse a folder that is a file, or files there already (without ``force``)."""
        for parent in (self.folder, *self.folder.parents):
            if parent.exists() and not parent.is_dir():
                raise ConfigError([Problem("--out", None, "", f"{parent} is not a folder: give a folder to write "
                                           "the manifests to")])
        existing = [str(self.path(a)) for a in aliases if self.path(a).exists() or self.path(a).is_symlink()]
        if existing and not self.force:
            raise ConfigError([Problem("--out", None, "", f"{', '.join(existing)} exist{'s' if len(existing) == 1 else ''}"
                                       " already: pass --force to overwrite, or export to another folder")])
        for name in existing:
            if Path(name).is_dir():
                raise ConfigError([Problem("--out", None, "", f"{name} is a folder: it cannot be overwritten by "
                                           "a manifest file")])

    def stage(self, documents: dict[str, list[dict[str, Any]]], environment: str) -> None:
        """Each app's manifests in a temp file next to its place; nothing is replaced yet."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for alias, app_documents in documents.items():
                target = self.path(alias)
                text = manifest_text(app_documents, f"App {alias}, exported by `qrvey-iac export --env {environment}`.")
                self._staged[target] = write_temp(target, text, 0o644)
        except OSError as exc:
            self.discard()
            raise ConfigError([Problem("--out", None, "", f"cannot write to {self.shown}: {exc.strerror or exc}; "
                                       "nothing was written or changed")]) from None

    def publish(self) -> list[Path]:
        """Rename every staged file into place."""
        written = []
        for target, temp in self._staged.items():
            os.replace(temp, target)
            written.append(target)
        self._staged.clear()
        fsync_folder(self.folder)
        return written

    def discard(self) -> None:
        for temp in self._staged.values():
            temp.unlink(missing_ok=True)
        self._staged.clear()
