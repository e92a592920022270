"""Read YAML while remembering the line of every key and item.

PyYAML's composed nodes carry marks; walking them once gives, for each path
(``("spec", "columns", 2, "columnType")``), the line it came from, so every
error can say ``file:line: field: what``. Duplicate keys, which PyYAML would
silently collapse, are reported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qrvey_iac.core.errors import Problem

MAX_FILE_BYTES = 5 * 1024 * 1024
FAST_LOADER = getattr(yaml, "CSafeLoader", None)  # libyaml, when PyYAML was built with it
Path_ = tuple[Any, ...]


@dataclass
class YamlDocument:
    file: str
    data: Any
    line: int
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int:
        """The line of ``path`` or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            found = self.lines.get(tuple(path[:end]))
            if found:
                return found
        return self.line


def read_text(path: Path, shown: str) -> tuple[str | None, list[Problem]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [Problem(shown, None, "", f"cannot read file: {exc.strerror}")]
    if len(raw) > MAX_FILE_BYTES:
        return None, [Problem(shown, None, "", f"file is {len(raw)} bytes; the limit is {MAX_FILE_BYTES}")]
    try:
        return raw.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        return None, [Problem(shown, None, "", f"not valid UTF-8 (byte {exc.start})")]


def parse_documents(text: str, shown: str) -> tuple[list[YamlDocument], list[Problem]]:
    """Every document of a YAML stream, or the one problem that stopped parsing.

    libyaml, when PyYAML has it, parses about six times faster; a stream it rejects is
    parsed again by the pure-Python loader, whose messages are the ones users see.
    """
    if FAST_LOADER is not None:
        try:
            return _parse(text, shown, FAST_LOADER, strict=True)
        except (yaml.YAMLError, RecursionError):
            pass
    return _parse(text, shown, yaml.SafeLoader)


def _parse(text: str, shown: str, loader_class: type, strict: bool = False) -> tuple[list[YamlDocument], list[Problem]]:
    documents: list[YamlDocument] = []
    try:
        problems = _read_stream(text, shown, loader_class, documents)
    except (yaml.YAMLError, RecursionError) as exc:
        if strict:
            raise
        problems = [_syntax_problem(exc, shown)]
    return documents, problems


def _read_stream(text: str, shown: str, loader_class: type, documents: list[YamlDocument]) -> list[Problem]:
    loader = loader_class(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            problems: list[Problem] = []
            lines: dict[Path_, int] = {}
            _walk(node, (), lines, problems, shown)
            if problems:
                return problems
            data = loader.construct_document(node)
            documents.append(YamlDocument(shown, data, node.start_mark.line + 1, lines))
    finally:
        loader.dispose()
    return []


def _syntax_problem(exc: Exception, shown: str) -> Problem:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        return Problem(shown, line, "", f"invalid YAML: {exc.problem or exc.context}")
    if isinstance(exc, RecursionError):
        return Problem(shown, None, "", "invalid YAML: nested too deeply")
    return Problem(shown, None, "", f"invalid YAML: {exc}")


def _walk(node: yaml.Node, path: Path_, lines: dict, problems: list[Problem], shown: str) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            child = (*path, key)
            if key in seen:
                problems.append(
                    Problem(shown, key_node.start_mark.line + 1, format_path(child), "duplicate key")
                )
            seen.add(key)
            _walk(value_node, child, lines, problems, shown)
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, problems, shown)


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
