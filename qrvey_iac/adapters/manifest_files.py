"""Load every manifest under a folder into a validated, resolved Manifest.

All problems of all files are collected and raised at once as a
ManifestError, each naming file, line and field.

What is read (README, "Manifests"): every file under the folder whose name ends in
``.yaml`` or ``.yml``, in sub-folders too (symlinked ones followed), except names that start
with a dot (editor lock links such as emacs' ``.#orders.yaml``, ``.git``). No such entry is
skipped silently: one that cannot be read (a dangling symlink, a symlink loop, a FIFO, device
or socket, a file or folder without permission, a name that is not UTF-8) is a problem naming
it and why, as is a folder that cannot be listed or an entry whose type cannot be told (an
unresolvable link named without an extension might have been a folder of manifests).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import re
import stat
from collections.abc import Collection, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from qrvey_iac.adapters.validation import problems_from, salvage
from qrvey_iac.adapters.yaml_source import (
    YamlDocument, format_path, not_regular, run_steps, shown_path, unreadable,
)
from qrvey_iac.adapters.yaml_worker import FileReader
from qrvey_iac.core.errors import ManifestError, Problem, did_you_mean, did_you_mean_address
from qrvey_iac.core.graph import find_cycle
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.kinds import KINDS
from qrvey_iac.core.kinds.base import Metadata
from qrvey_iac.core.manifest import (
    Manifest, MovedDocument, RemovedDocument, Resource, Salvaged, document_union,
)
from qrvey_iac.adapters.manifest_moves import checked_instructions, declared_addresses

DOCUMENT = TypeAdapter(document_union())
INSTRUCTIONS = (MovedDocument, RemovedDocument)
REFERENCE = re.compile(r"\$\{(?:var\.([A-Za-z0-9_-]+)|env:([A-Za-z_][A-Za-z0-9_]*))\}")
ENV_ONLY = re.compile(r"\$\{env:[A-Za-z_][A-Za-z0-9_]*\}")
SUFFIXES = (".yaml", ".yml")
T = TypeVar("T")


def manifest_files(folder: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The manifest files under ``folder`` in path order, and (path, why) for every entry that
    should be read and cannot be (see the module's docstring)."""
    files: list[Path] = []
    refused: list[tuple[Path, str]] = []
    try:
        root = os.stat(folder)
    except OSError as exc:
        return [], [(folder, unreadable(folder, exc))]
    _collect(folder, [(root.st_dev, root.st_ino)], files, refused)
    return sorted(files), refused


def _collect(folder: Path, ancestors: list[tuple[int, int]], files: list[Path], refused: list) -> None:
    try:
        with os.scandir(folder) as entries:
            names = sorted(entry.name for entry in entries)
    except OSError as exc:
        refused.append((folder, unreadable(folder, exc, failed="cannot list this folder")))
        return
    for name in names:
        if name.startswith("."):
            continue
        path = folder / name
        manifest_like = name.endswith(SUFFIXES)
        try:
            info = os.stat(path)
        except OSError as exc:
            if manifest_like or "." not in name:
                refused.append((path, unreadable(path, exc)))
            continue
        if stat.S_ISDIR(info.st_mode):
            if not _decodable(name):
                refused.append((path, "a folder whose name is not valid UTF-8: rename it"))
            elif (info.st_dev, info.st_ino) in ancestors:
                refused.append((path, "a symlink loop: this folder link leads back to a folder that holds it"))
            else:
                _collect(path, [*ancestors, (info.st_dev, info.st_ino)], files, refused)
        elif not manifest_like:
            continue
        elif not _decodable(name):
            refused.append((path, "a file name that is not valid UTF-8: rename it"))
        elif not stat.S_ISREG(info.st_mode):
            refused.append((path, f"cannot read: {not_regular(info.st_mode)}"))
        elif not os.access(path, os.R_OK):      # found here, before the load's first pause
            refused.append((path, "cannot read: permission denied"))
        else:
            files.append(path)


def _decodable(name: str) -> bool:
    """False for a name whose bytes are not UTF-8 (Python holds them as lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def load_manifest(*args: Any, **kwargs: Any) -> Manifest:
    """Every manifest under a folder, validated and resolved (arguments: see load_steps)."""
    return run_steps(load_steps(*args, **kwargs))


async def load_manifest_async(*args: Any, **kwargs: Any) -> Manifest:
    """load_manifest inside a running event loop, taking turns with the other tasks.

    Parsing is CPU work; a refresh is mostly waiting. Run together, the manifests are read
    in the gaps between Qrvey's answers: one document per turn of the loop, so an answer
    waits on the parser for at most about one document, not for a whole file.

    The first step, before any other task gets a turn, lists the folder: an entry that
    cannot be read fails the load then, before the refresh's first call goes out.
    """
    steps = load_steps(*args, **kwargs)
    try:
        while True:
            try:
                waited = next(steps)
            except StopIteration as done:
                return done.value
            if waited is None:
                await asyncio.sleep(0)
            else:                      # a file the YAML worker is still parsing (yaml_worker.py)
                answer = asyncio.wrap_future(waited)
                answer.add_done_callback(_looked_at)
                await asyncio.wait([answer])
    finally:
        steps.close()                  # stops the worker of a load left early (cancelled)


def _looked_at(answer: asyncio.Future) -> None:
    """A worker's failure is read where the file is taken (yaml_worker.FileReader.steps); this
    copy of it, on the event loop's side, is only waited for, or left when the load stopped."""
    if not answer.cancelled():
        answer.exception()


def load_steps(
    folder: Path,
    apps: Mapping[str, AppRef],
    variables: Mapping[str, Any],
    environ: Mapping[str, str],
    shown_base: Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    overrides_origin: str = "qrvey-iac.yaml",
    given: Mapping[str, str] | None = None,
    declared: Collection[str] = (),
    environment: str = "",
) -> Generator[None, None, Manifest]:
    """load_manifest as a generator that pauses after listing the folder and after each
    document (see parse_steps). When an entry cannot be read the load is bound to fail: it
    then runs to its end without pausing, so that failure comes before anything else runs.

    Every problem is collected and raised at once: a document that fails validation still
    takes part, as far as it is valid, in the checks between documents (see Salvaged).
    ``given`` names the variables set by ``--var`` or a values file (name -> where): one that
    no manifest uses and the environment does not ``declare`` is a problem. ``environment``
    names the environment whose ownership marker every managed document carries."""
    missing = _not_a_folder(folder)
    if missing:
        raise ManifestError([Problem(_shown(folder, shown_base), None, "", missing)])
    files, refused = manifest_files(folder)
    problems = [Problem(_shown(path, shown_base), None, "", why) for path, why in refused]
    pause = not problems
    if pause:
        yield
    located: list[tuple[Any, YamlDocument]] = []
    instructions: list[tuple[MovedDocument | RemovedDocument, YamlDocument]] = []
    secrets: set[str] = set()
    used: set[str] = set()            # every ${var.NAME} of every file, in any document
    every_file_read = not refused
    digest = hashlib.sha256()
    listed = [(path, _shown(path, shown_base)) for path in files]
    with FileReader(listed) as reader:
        for index, (_, shown) in enumerate(listed):
            text, read_problems, (documents, parse_problems) = yield from _steps(reader.steps(index), pause)
            problems.extend(read_problems)
            if text is None:
                every_file_read = False
                continue
            if given:
                used.update(name for name, _ in REFERENCE.findall(text) if name)
            digest.update(shown.encode() + b"\0" + text.encode() + b"\0")
            problems.extend(parse_problems)
            for document in documents:
                parsed = _validate_document(document, variables, environ, secrets, problems)
                if isinstance(parsed, INSTRUCTIONS):
                    instructions.append((parsed, document))
                elif parsed is not None:
                    located.append((parsed, _slimmed(document)))
                if pause:
                    yield
    if every_file_read:
        problems.extend(_unknown_given(given or {}, used, declared))
    located = _with_overrides(located, overrides or {}, overrides_origin, problems)
    resources = yield from _steps(_resolve(located, apps, problems, environment), pause)
    moves, removals = checked_instructions(instructions, declared_addresses(located), problems)
    if problems:
        problems.sort(key=lambda p: (p.file, p.line or 0))
        raise ManifestError(problems, summary=_summary(problems))
    return Manifest(resources=resources, moves=moves, removals=removals, digest=digest.hexdigest(),
                    secrets=frozenset(secrets), environment=environment)


def _unknown_given(given: Mapping[str, str], used: set[str], declared: Collection[str]) -> list[Problem]:
    """A variable set on the command line or in a values file that nothing reads: a typo
    (``--var warehouse_conection=...``) would otherwise leave the value it meant to replace."""
    known = used | set(declared)
    return [
        Problem(origin, None, "", f"unknown variable {name!r}{did_you_mean(name, known)}: no manifest uses "
                f"${{var.{name}}} and the environment's variables do not declare it")
        for name, origin in sorted(given.items(), key=lambda item: (item[1], item[0])) if name not in known
    ]


def _steps(steps: Generator[None, None, T], pause: bool) -> Generator[None, None, T]:
    """``steps`` with its pauses, or run to its end at once."""
    if pause:
        return (yield from steps)
    return run_steps(steps)


def _slimmed(document: YamlDocument) -> YamlDocument:
    """A validated document as the later checks need it: no data, lines of metadata and spec.* only.

    Those checks (_resolve, _check_references) name metadata.name, metadata.dependsOn[i],
    spec.app and spec.source (and the paths a kind lists in ``checked_spec_paths``); any
    other path still falls back to its nearest kept ancestor. Dropping the rest as each
    document is validated keeps every document's data from living until the end of the load
    (what that saves: docs/performance.md).
    """
    if document.known_lines is None:        # found when asked (yaml_source.LineSource): nothing to drop
        return YamlDocument(document.file, None, document.line, None, source=document.source, index=document.index)
    kept = {("metadata", "dependsOn"), *KINDS[document.data["kind"]].checked_spec_paths}
    lines = {path: line for path, line in document.lines.items() if len(path) <= 2 or path[:2] in kept}
    return YamlDocument(document.file, None, document.line, lines)


def _summary(problems: list[Problem]) -> str:
    return f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found in the manifests."


def _shown(path: Path, base: Path | None) -> str:
    try:
        return shown_path(path.relative_to(base) if base else path)
    except ValueError:
        return shown_path(path)


def _not_a_folder(folder: Path) -> str | None:
    """Why the manifests folder itself cannot be walked, or None."""
    try:
        info = os.stat(folder)
    except OSError as exc:
        if exc.errno == errno.ENOENT and not folder.is_symlink():
            return "manifests folder not found"
        return "manifests folder: " + unreadable(folder, exc)
    return None if stat.S_ISDIR(info.st_mode) else "manifests folder: not a folder"


@dataclass(frozen=True)
class Failed:
    """A document that failed validation, as far as it is valid (see validation.salvage):
    what the checks between documents read of it. ``data`` is its interpolated spec, kept
    to salvage it again with an environment's overrides."""

    kind: str
    metadata: Metadata
    spec: BaseModel
    broken: frozenset[tuple]
    data: Any
    unusable: frozenset[tuple]


def _validate_document(
    document: YamlDocument, variables, environ, secrets: set[str], problems: list[Problem]
) -> Any | None:
    """The validated document; a Failed one when it has problems (reported here), as long as
    its kind and metadata.name are valid (it has an address); else None."""
    if document.data is None:
        return None
    if not isinstance(document.data, dict):
        problems.append(Problem(document.file, document.line, "", "expected a mapping (a manifest document)"))
        return None
    unresolved = _literal_secrets(document, problems)
    data = _interpolated(document, variables, environ, secrets, problems, unresolved)
    try:
        parsed = DOCUMENT.validate_python(data)
    except ValidationError as exc:
        problems.extend(problems_from(exc, document, reported=unresolved))
        return _failed(data, unresolved)
    return _failed(data, unresolved) if unresolved else parsed


def _literal_secrets(document: YamlDocument, problems: list[Problem]) -> set[tuple]:
    """The paths a kind takes only as ``${env:NAME}`` (a password) that hold anything else, each
    a problem naming the path and never the value (it may be a password written in git)."""
    kind = document.data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS.names:
        return set()
    refused: set[tuple] = set()
    for path in KINDS[kind].env_only:
        value: Any = document.data
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None or (isinstance(value, str) and ENV_ONLY.fullmatch(value)):
            continue
        problems.append(Problem(document.file, document.line_of(path), format_path(path),
                                "only an environment variable is accepted here, as ${env:NAME}: a value written "
                                "in a manifest (or a ${var.X}) would be kept in git"))
        refused.add(path)
    return refused


def _failed(data: dict[str, Any], unresolved: set[tuple]) -> Failed | None:
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS.names:
        return None
    metadata, broken = salvage(Metadata, data.get("metadata"), _under("metadata", unresolved))
    if ("name",) in broken:
        return None           # no address: nothing can refer to it
    unusable = frozenset(_under("spec", unresolved))
    spec, broken = salvage(_spec_model(kind), data.get("spec"), unusable)
    return Failed(kind, metadata, spec, broken, data.get("spec"), unusable)


def _under(field: str, paths: set[tuple]) -> set[tuple]:
    return {path[1:] for path in paths if path[:1] == (field,)}


def _spec_model(kind: str) -> type[BaseModel]:
    return KINDS[kind].document.model_fields["spec"].annotation


def _interpolated(document: YamlDocument, variables, environ, secrets, problems, unresolved: set[tuple]) -> Any:
    """The document's data with its ${var.X} and ${env:X} replaced (see _interpolate). Where the
    reader noted the strings holding "${", only those are visited and only the containers on
    their paths copied; the rest is shared with ``document.data``, which nothing changes."""
    if document.placeholders is None:
        return _interpolate(document.data, (), document, variables, environ, secrets, problems, unresolved)
    data = document.data
    for path in document.placeholders:
        value = _interpolate(_at(data, path), path, document, variables, environ, secrets, problems, unresolved)
        data = _replaced(data, path, value)
    return data


def _at(data: Any, path: tuple) -> Any:
    for key in path:
        data = data[key]
    return data


def _replaced(data: Any, path: tuple, value: Any) -> Any:
    """A copy of ``data`` with ``value`` at ``path``: the containers on the path are copied."""
    if not path:
        return value
    copy = list(data) if isinstance(data, list) else dict(data)
    copy[path[0]] = _replaced(data[path[0]], path[1:], value)
    return copy


def _interpolate(value, path, document, variables, environ, secrets, problems, unresolved: set[tuple]):
    """``value`` with its ${var.X} and ${env:X} replaced; the path of each that cannot be goes
    into ``unresolved`` (and a problem into ``problems``)."""
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, k), document, variables, environ, secrets, problems, unresolved)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, i), document, variables, environ, secrets, problems, unresolved)
                for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def lookup(match: re.Match) -> Any:
        name, env = match.group(1), match.group(2)
        if name is not None:
            if name in variables:
                return variables[name]
            known = ", ".join(sorted(variables)) or "none"
            problems.append(Problem(document.file, document.line_of(path), format_path(path),
                                    f"unknown variable {name!r}{did_you_mean(name, variables)} (known: {known})"))
            unresolved.add(path)
            return match.group(0)
        if env in environ:
            secrets.add(environ[env])
            return environ[env]
        problems.append(Problem(document.file, document.line_of(path), format_path(path),
                                f"environment variable {env} is not set"))
        unresolved.add(path)
        return match.group(0)

    whole = REFERENCE.fullmatch(value)
    if whole:
        return lookup(whole)
    return REFERENCE.sub(lambda m: str(lookup(m)), value)


def _with_overrides(located, overrides, origin: str, problems: list[Problem]):
    """Apply an environment's per-resource spec fields (protect, name, ...)."""
    addresses = {KINDS[p.kind].address(p.metadata.name) for p, _ in located}
    for address in sorted(set(overrides) - addresses):
        problems.append(Problem(origin, None, f"overrides.{address}",
                                f"no manifest has this address{did_you_mean_address(address, addresses)}"))
    result = []
    for parsed, document in located:
        address = KINDS[parsed.kind].address(parsed.metadata.name)
        fields = overrides.get(address)
        if fields and isinstance(parsed, Failed):
            # its own problems come first; the overrides still count in the checks between documents
            data = {**parsed.data, **fields} if isinstance(parsed.data, dict) else parsed.data
            unusable = {path for path in parsed.unusable if not path or path[0] not in fields}
            spec, broken = salvage(_spec_model(parsed.kind), data, unusable)
            parsed = Failed(parsed.kind, parsed.metadata, spec, broken, data, frozenset(unusable))
        elif fields:
            data = {**parsed.spec.model_dump(exclude_unset=True), **fields}
            try:
                parsed = parsed.model_copy(update={"spec": type(parsed.spec).model_validate(data)})
            except ValidationError as exc:
                for error in exc.errors(include_url=False):
                    where = ".".join(str(p) for p in error["loc"])
                    problems.append(Problem(origin, None, f"overrides.{address}.{where}", error["msg"]))
                spec, broken = salvage(_spec_model(parsed.kind), data)
                parsed = Failed(parsed.kind, parsed.metadata, spec, broken, data, frozenset())
        result.append((parsed, document))
    return result


def _resolve(
    located, apps: Mapping[str, AppRef], problems: list[Problem], environment: str = ""
) -> Generator[None, None, dict[str, Resource]]:
    """Resources by address, each with its managed document (made here, one per turn).

    A document that failed validation (Failed) becomes no resource, but takes part in the
    checks: duplicate addresses, its app, references to it and from it, cycles."""
    resources: dict[str, Resource] = {}
    nodes: dict[str, Resource | Salvaged] = {}
    where: dict[str, YamlDocument] = {}
    for parsed, document in located:
        kind = KINDS[parsed.kind]
        address = kind.address(parsed.metadata.name)
        if address in nodes:
            first = where[address]
            problems.append(Problem(document.file, document.line_of(("metadata", "name")), "metadata.name",
                                    f"duplicate address {address} (first defined at {first.file}:{first.line})"))
            continue
        broken = parsed.broken if isinstance(parsed, Failed) else frozenset()
        app = AppRef("", "")
        if ("app",) not in broken:
            app = apps.get(parsed.spec.app) or app
            if parsed.spec.app not in apps:
                known = ", ".join(sorted(apps)) or "none"
                problems.append(Problem(document.file, document.line_of(("spec", "app")), "spec.app",
                                        f"unknown app {parsed.spec.app!r}{did_you_mean(parsed.spec.app, apps)} "
                                        f"(apps of this environment: {known})"))
        references_valid = not any(path[0] in kind.reference_fields for path in broken)
        depends = [*(kind.dependencies(parsed.spec) if references_valid else ()), *parsed.metadata.dependsOn]
        depends_on = tuple(dict.fromkeys(depends))
        if isinstance(parsed, Failed):
            source = kind.source(parsed.spec) if references_valid else None
            nodes[address] = Salvaged(address, parsed.kind, parsed.spec, broken, depends_on,
                                      source.address if source else None)
        else:
            nodes[address] = resources[address] = Resource(
                address=address, kind=parsed.kind, app=app, app_alias=parsed.spec.app, spec=parsed.spec,
                depends_on=depends_on, file=document.file, line=document.line, environment=environment,
            )
        where[address] = document
        yield
    _check_references(nodes, where, problems)
    return resources


def _check_references(nodes: dict[str, Resource | Salvaged], where, problems: list[Problem]) -> None:
    for address, node in nodes.items():
        document = where[address]
        in_spec = 0          # the references made in the spec come first in depends_on
        for index, needed in enumerate(node.depends_on):
            is_source = needed == node.source_address
            field = node.definition.reference_path(node.spec, needed)
            if field is None:
                field = ("metadata", "dependsOn", index - in_spec)
            else:
                in_spec += 1
            if needed not in nodes:
                problems.append(Problem(document.file, document.line_of(field), format_path(field),
                                        f"unknown reference {needed}{did_you_mean_address(needed, nodes)}"))
            elif is_source:
                for path, message in node.definition.check_source(node, nodes[needed]):
                    problems.append(Problem(document.file, document.line_of(path), format_path(path), message))
    cycle = find_cycle({a: [d for d in r.depends_on if d in nodes] for a, r in nodes.items()})
    if cycle:
        first = where[cycle[0]]
        problems.append(Problem(first.file, first.line, "metadata.dependsOn",
                                "dependency cycle: " + " -> ".join(cycle)))
