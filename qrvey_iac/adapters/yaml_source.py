"""Read YAML while remembering the line of every key and item.

PyYAML's composed nodes carry marks; walking them once gives, for each path
(``("spec", "columns", 2, "columnType")``), the line it came from, so every
error can say ``file:line: field: what``. Duplicate keys, which PyYAML would
silently collapse, are reported here, and so is every value JSON cannot carry (see
``_scalar``): what is read here is sent to Qrvey as JSON, so a date, a
``!!binary`` or a NaN must be refused now, at its line, not fail half-way through apply.
"""

from __future__ import annotations

import errno
import functools
import json
import math
import os
import re
import stat
from concurrent import futures
from dataclasses import dataclass, field
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from qrvey_iac.core.errors import Problem

MAX_FILE_BYTES = 5 * 1024 * 1024
_LIBYAML_LOADER = getattr(yaml, "CSafeLoader", None)  # libyaml, when PyYAML was built with it
# Deeper documents are refused before they are composed: libyaml's composer recurses on the
# C stack, so a few hundred KB of "[[[[..." or "- - - ..." crashed the process (SIGSEGV), and
# the pure-Python loader, the walk below and the validators recurse too.
MAX_DEPTH = 100
ALIAS_GROWTH = 10       # aliases may repeat nodes, not multiply them ("billion laughs")
_TAG = "tag:yaml.org,2002:"
_MAP_TAG, _SEQ_TAG, _STR_TAG = _TAG + "map", _TAG + "seq", _TAG + "str"
_SCALAR_TAGS = tuple(_TAG + name for name in ("null", "bool", "int", "float", "binary", "timestamp"))
_BINARY_TAG, _TIMESTAMP_TAG = _TAG + "binary", _TAG + "timestamp"
_SET_TAG, _MERGE_TAG = _TAG + "set", _TAG + "merge"
# The largest integer a JSON number holds exactly everywhere: JavaScript (Qrvey's API) reads
# every number as a double, so 2**53 + 1 would silently arrive as 2**53 (RFC 8259 section 6).
MAX_JSON_INT = 2**53 - 1
_DATE = re.compile(r"\d{4}-\d\d?-\d\d?")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")   # UTF-8 never hides these bytes
_ADJACENT_PAIR = re.compile(r"[\[{][\]}]")
Path_ = tuple[Any, ...]
T = TypeVar("T")


if _LIBYAML_LOADER is not None:
    class _RememberingLoader(_LIBYAML_LOADER):
        """libyaml's safe loader, resolving each distinct scalar once.

        libyaml composes in C, but asks PyYAML's resolver, in Python, for the tag of every
        scalar, which tries the implicit patterns (bool, int, float, null, timestamp) one by one;
        manifests repeat the same few values (column types, keys, booleans) thousands of times.
        The safe loaders have no path resolvers, so a tag depends on the value and on how it was
        written (``implicit``) alone. What it saves: docs/performance.md, "Issue 11, last round".
        """

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self._tags: dict[tuple, str] = {}

        def resolve(self, kind: type, value: Any, implicit: Any) -> str:
            key = (kind, value, implicit)
            tag = self._tags.get(key)
            if tag is None:
                tag = self._tags[key] = super().resolve(kind, value, implicit)
            return tag

    FAST_LOADER: type | None = _RememberingLoader
else:
    FAST_LOADER = None


class LineSource:
    """The lines of every key and item of one stream's documents, found when a message first
    asks for one: composed and walked again then, once for the whole stream. Reading a valid
    manifest never needs them, and recording them as it is built took about three quarters of
    the build (docs/performance.md, "Issue 11, last round")."""

    def __init__(self, text: str, shown: str, loader_class: type) -> None:
        self.text, self.shown, self.loader_class = text, shown, loader_class
        self._lines: list[dict[Path_, int]] | None = None

    def lines(self, index: int) -> dict[Path_, int]:
        """The line map of the stream's ``index``-th document (empty documents not counted)."""
        if self._lines is None:
            self._lines = []
            loader = self.loader_class(self.text)
            scalars = _scalar_constructors(loader)
            try:
                while loader.check_node():
                    node = loader.get_node()
                    if node is not None:
                        self._lines.append(_eager(loader, node, self.shown, scalars, True, set())[1])
            finally:
                loader.dispose()
        return self._lines[index]


@dataclass
class YamlDocument:
    file: str
    data: Any
    line: int
    known_lines: dict[Path_, int] | None = field(default_factory=dict)   # None: from ``source`` when asked
    refused: frozenset[Path_] = frozenset()   # values JSON cannot carry, read as their text (see _scalar)
    # the paths of the strings that hold "${" (what interpolation looks at); None: not noted
    placeholders: tuple[Path_, ...] | None = None
    source: LineSource | None = None
    index: int = 0                             # the document's place in ``source``

    @property
    def lines(self) -> dict[Path_, int]:
        """The line of each path, found on first use for a document read without them."""
        if self.known_lines is None:
            self.known_lines = self.source.lines(self.index)
        return self.known_lines

    def line_of(self, path: Path_) -> int:
        """The line of ``path`` or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            found = self.lines.get(tuple(path[:end]))
            if found:
                return found
        return self.line


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def read_text(path: Path, shown: str, pipes: bool = False) -> tuple[str | None, list[Problem]]:
    """The text of a regular file, or the problem that stops reading it.

    Anything else (a FIFO, a device, a socket, a folder) is refused without reading from it:
    the file is opened without blocking and asked what it is, so a FIFO with no writer
    cannot hang the command. With ``pipes`` a FIFO is read too (``--var-file <(...)``).
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        return None, [Problem(shown, None, "", unreadable(path, exc))]
    try:
        info = os.fstat(fd)
        if pipes and stat.S_ISFIFO(info.st_mode):
            os.set_blocking(fd, True)
        elif not stat.S_ISREG(info.st_mode):
            return None, [Problem(shown, None, "", f"cannot read: {not_regular(info.st_mode)}")]
        elif info.st_size > MAX_FILE_BYTES:
            return None, [Problem(shown, None, "", f"file is {info.st_size} bytes; the limit is {MAX_FILE_BYTES}")]
        with open(fd, "rb", closefd=False) as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return None, [Problem(shown, None, "", unreadable(path, exc))]
    finally:
        os.close(fd)
    if len(raw) > MAX_FILE_BYTES:
        return None, [Problem(shown, None, "", f"more than {MAX_FILE_BYTES} bytes; the limit is {MAX_FILE_BYTES}")]
    try:
        return raw.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        return None, [Problem(shown, None, "", f"not valid UTF-8 (byte {exc.start})")]


def unreadable(path: Path, exc: OSError, failed: str = "cannot read") -> str:
    """Why ``path`` cannot be opened (or, with ``failed``, listed), in words that say what to fix."""
    if exc.errno == errno.ELOOP:
        return f"{failed}: a symlink loop (following its links leads back to one of them)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{failed}: permission denied"
    if exc.errno == errno.ENOENT and path.is_symlink():
        return f"{failed}: a dangling symlink (its target {shown_path(os.readlink(path))} does not exist)"
    if exc.errno == errno.ENOENT:
        return f"{failed}: not found"
    return f"{failed}: {exc.strerror}"


def not_regular(mode: int) -> str:
    what = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file")
    return what if what == "not a regular file" else f"{what}, not a regular file"


def shown_path(path: str | os.PathLike) -> str:
    """A path as it can be printed on one line: bytes that are not UTF-8 as \\xNN escapes, and
    JSON-quoted when it holds a control character (a newline would break an ``Error:`` line)."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return text if text.isprintable() else json.dumps(text)


Parsed = tuple[list["YamlDocument"], list[Problem]]
Steps = Generator[None, None, Parsed]


def parse_documents(text: str, shown: str) -> Parsed:
    """Every document of a YAML stream, or the one problem that stopped parsing."""
    return run_steps(parse_steps(text, shown))


def parse_steps(text: str, shown: str) -> Steps:
    """parse_documents, pausing (a bare ``yield``) after each document: a caller with other
    work, such as answers arriving from Qrvey, gets a turn between two documents.

    libyaml, when PyYAML has it, parses about six times faster; a stream it rejects is
    parsed again by the pure-Python loader, whose messages are the ones users see.
    """
    if _may_nest_deeper_than(text, MAX_DEPTH):
        line = _line_deeper_than(text, MAX_DEPTH)
        if line is not None:
            return [], [Problem(shown, line, "", f"invalid YAML: nested more than {MAX_DEPTH} levels deep")]
    if FAST_LOADER is not None:
        try:
            return (yield from _parse_steps(text, shown, FAST_LOADER, strict=True))
        except (yaml.YAMLError, RecursionError):
            pass
    return (yield from _parse_steps(text, shown, yaml.SafeLoader))


def run_steps(steps: Generator[Any, None, T]) -> T:
    """Run a generator of pauses to its end, without pausing; its return value. A pause that
    yields a Future (a file the YAML worker is parsing: yaml_worker.py) waits for it."""
    try:
        while True:
            try:
                waited = next(steps)
            except StopIteration as done:
                return done.value
            if waited is not None:
                futures.wait([waited])
    finally:
        steps.close()      # at once, also when it failed (a Ctrl-C stops the YAML worker now)


def _parse(
    text: str, shown: str, loader_class: type, strict: bool = False, one_pass: bool = True,
) -> Parsed:
    return run_steps(_parse_steps(text, shown, loader_class, strict, one_pass))


def _parse_steps(
    text: str, shown: str, loader_class: type, strict: bool = False, one_pass: bool = True,
) -> Steps:
    documents: list[YamlDocument] = []
    problems: list[Problem] = []
    try:
        yield from _read_stream(text, shown, loader_class, documents, problems, one_pass)
    except (yaml.YAMLError, RecursionError) as exc:
        if strict:
            raise
        problems.append(_syntax_problem(exc, shown, text))
    return documents, problems


def _read_stream(
    text: str, shown: str, loader_class: type, documents: list[YamlDocument], problems: list[Problem],
    one_pass: bool = True,
) -> Generator[None, None, None]:
    """Every document into ``documents`` and its problems into ``problems``.

    A document with problems (a duplicate key, a value JSON cannot carry) is kept, the later
    key winning and each refused value read as the text it was written as, so its other
    mistakes are found in the same run; the problems alone already make the load fail."""
    loader = loader_class(text)
    aliases = "*" in text
    scalars = _scalar_constructors(loader)
    source = LineSource(text, shown, loader_class)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            if aliases:
                alias_problem = _alias_problem(node, shown)
                if alias_problem is not None:
                    problems.append(alias_problem)
                    return
            refused: set[Path_] = set()
            data, lines, found, placeholders = _document(loader, node, shown, scalars, one_pass and not aliases, refused)
            problems.extend(found)
            documents.append(YamlDocument(shown, data, node.start_mark.line + 1, lines, frozenset(refused),
                                          placeholders, source if lines is None else None, len(documents)))
            yield
    finally:
        loader.dispose()


def _scalar_constructors(loader) -> dict:
    return {tag: functools.partial(loader.yaml_constructors[tag], loader)
            for tag in _SCALAR_TAGS if tag in loader.yaml_constructors}


def _document(
    loader, node: yaml.Node, shown: str, scalars: dict, one_pass: bool, refused: set[Path_],
) -> tuple[Any, dict | None, list[Problem], tuple[Path_, ...] | None]:
    """(data, lines, problems, placeholders) of one composed document; lines None when the
    document has no problem of its own: they are found when asked (LineSource)."""
    if one_pass:
        placeholders: list[Path_] = []
        try:
            return _plain(node, [], placeholders, scalars), None, [], tuple(placeholders)
        except _NotPlain:
            one_pass = False
        except _Careful:
            pass
    return _eager(loader, node, shown, scalars, one_pass, refused)


def _eager(
    loader, node: yaml.Node, shown: str, scalars: dict, one_pass: bool, refused: set[Path_],
) -> tuple[Any, dict, list[Problem], tuple[Path_, ...] | None]:
    """(data, lines, problems, placeholders) of one composed document, its lines recorded.

    A plain document (string keys, standard tags, no aliases: every manifest we know)
    is built in one pass that also records lines and duplicate keys, 40% faster than
    _walk followed by PyYAML's constructor. Anything else takes that second road. Neither
    notes placeholders (None: interpolation looks at every value of a document read here,
    which has a problem of its own or is not plain).
    """
    if one_pass:
        lines: dict[Path_, int] = {}
        problems: list[Problem] = []
        try:
            return _build(node, (), lines, problems, shown, scalars, refused), lines, problems, None
        except _NotPlain:
            pass
    lines, problems = {}, []
    refused.clear()      # what a one-pass attempt left before _NotPlain, like lines and problems
    _walk(node, (), lines, problems, shown, scalars, set(), refused)
    return loader.construct_document(node), lines, problems, None


class _NotPlain(Exception):
    """A node _build leaves to PyYAML: merge keys, keys that are not strings, other tags."""


class _Careful(Exception):
    """A plain document with a problem of its own (a duplicate key, a value JSON cannot carry):
    read again by _build, which records the lines the problem is reported at."""


def _plain(node: yaml.Node, path: list, placeholders: list[Path_], scalars: dict) -> Any:
    """The data of a plain document with no problem of its own, no lines recorded (_build's
    data), and the path of each string holding "${" in ``placeholders``; else _NotPlain or
    _Careful. ``path`` is the path of ``node``, as a list that grows and shrinks on the way."""
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _STR_TAG:
            if "${" in node.value:
                placeholders.append(tuple(path))
            return node.value
        if node.tag not in scalars:
            raise _NotPlain
        value, problem = _scalar(node, scalars)
        if problem is not None:
            raise _Careful
        return value
    # a string child (most nodes) is read here rather than by a call of its own
    if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ_TAG:
        items = []
        for index, item in enumerate(node.value):
            if item.tag == _STR_TAG and isinstance(item, yaml.ScalarNode) and "${" not in item.value:
                items.append(item.value)
                continue
            path.append(index)
            items.append(_plain(item, path, placeholders, scalars))
            path.pop()
        return items
    if not isinstance(node, yaml.MappingNode) or node.tag != _MAP_TAG:
        raise _NotPlain
    mapping: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = _string_key(key_node)
        if key in mapping:
            raise _Careful
        if value_node.tag == _STR_TAG and isinstance(value_node, yaml.ScalarNode) and "${" not in value_node.value:
            mapping[key] = value_node.value
            continue
        path.append(key)
        mapping[key] = _plain(value_node, path, placeholders, scalars)
        path.pop()
    return mapping


def _string_key(key_node: yaml.Node) -> str:
    """A plain mapping's key: a string; any other key is left to PyYAML (_NotPlain)."""
    if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
        raise _NotPlain
    return key_node.value


def _build(
    node: yaml.Node, path: Path_, lines: dict, problems: list[Problem], shown: str, scalars: dict,
    refused: set[Path_] | None = None,
) -> Any:
    """_walk and construct_document at once; same data, lines, problems and refused paths, or _NotPlain."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _STR_TAG:
            return node.value
        if node.tag not in scalars:
            raise _NotPlain
        value, problem = _scalar(node, scalars)
        if problem is not None:
            problems.append(Problem(shown, node.start_mark.line + 1, format_path(path), problem))
            if refused is not None:
                refused.add(path)
            return node.value
        return value
    if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ_TAG:
        return [_build(item, (*path, index), lines, problems, shown, scalars, refused)
                for index, item in enumerate(node.value)]
    if not isinstance(node, yaml.MappingNode) or node.tag != _MAP_TAG:
        raise _NotPlain
    mapping: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = _string_key(key_node)
        child = (*path, key)
        if key in mapping:
            problems.append(Problem(shown, key_node.start_mark.line + 1, format_path(child), "duplicate key"))
        mapping[key] = _build(value_node, child, lines, problems, shown, scalars, refused)
        lines[child] = key_node.start_mark.line + 1
    return mapping


def _may_nest_deeper_than(text: str, limit: int) -> bool:
    """A cheap upper bound on nesting: flow brackets (quoted ones too) plus, for block
    nesting, two levels per character of the longest run of indentation and ``- ``/``? ``
    markers that starts a line (a block level needs one more column, or shares it once)."""
    brackets = text.encode("utf-8", "surrogatepass").translate(None, _NOT_BRACKETS).decode("ascii")
    peak = _flow_depth_bound(brackets, limit)
    if peak > limit:
        return True
    run = max(0, (limit - peak) // 2)       # 2 * (run + 1) + peak > limit
    return re.search(rf"^[ \t?-]{{{run},}}", text, re.MULTILINE) is not None


def _flow_depth_bound(brackets: str, limit: int) -> int:
    """At least the deepest flow nesting of ``brackets`` (a string of []{} only), or more
    than ``limit``. A pass drops every adjacent open-close pair (at C speed), which lowers
    the deepest point by at most one; a few passes leave little for the Python loop."""
    passes = 0
    while brackets and passes < 3:
        shorter = _ADJACENT_PAIR.sub("", brackets)
        if len(shorter) == len(brackets):
            break
        brackets, passes = shorter, passes + 1
    depth = peak = passes
    for bracket in brackets:
        depth = depth + 1 if bracket in "[{" else max(passes, depth - 1)
        if depth > peak:
            peak = depth
            if peak > limit:
                break
    return peak


def _line_deeper_than(text: str, limit: int) -> int | None:
    """The line where the nesting first goes past ``limit``, read from the parser's events
    (an iterative pass); None when it never does, or when a syntax error comes first (the
    normal parse reports it, having nested no deeper than ``limit`` to get there).

    libyaml refuses to scan past its own nesting limit (1000 levels in the libyaml of
    PyYAML 6.0.4's wheels), and it can scan that far ahead of the events, looking for the
    end of a possible key: ``[`` x 1001 fails before the first event. So a stream libyaml
    rejects is read again by the pure-Python parser, whose answer is the one that counts.
    """
    loaders = (yaml.SafeLoader,) if FAST_LOADER is None else (FAST_LOADER, yaml.SafeLoader)
    for loader in loaders:
        try:
            return _first_line_deeper_than(yaml.parse(text, Loader=loader), limit)
        except yaml.YAMLError:
            continue
    return None


def _first_line_deeper_than(events: Iterable[yaml.Event], limit: int) -> int | None:
    depth = 0
    for event in events:
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > limit:
                return event.start_mark.line + 1
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return None


def _alias_problem(node: yaml.Node, shown: str) -> Problem | None:
    """Aliases that refer to their own ancestor (a cycle), or expand the document far beyond
    what was written (each alias repeats its anchor's whole subtree)."""
    sizes: dict[int, int] = {}
    try:
        expanded = _expanded_size(node, sizes)
    except _AliasCycle as cycle:
        return Problem(shown, cycle.line, "", "invalid YAML: an alias refers to a node that contains it")
    if expanded > ALIAS_GROWTH * len(sizes) + 10_000:
        return Problem(shown, node.start_mark.line + 1, "",
                       f"invalid YAML: its aliases expand {len(sizes)} nodes to {expanded}")
    return None


class _AliasCycle(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many nodes ``node`` stands for once aliases are expanded (each node sized once)."""
    known = sizes.get(id(node))
    if known == 0:
        raise _AliasCycle(node.start_mark.line + 1)
    if known is None:
        sizes[id(node)] = 0      # in progress: meeting it again below is a cycle
        children = node.value if isinstance(node, yaml.SequenceNode) else (
            [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else [])
        known = sizes[id(node)] = 1 + sum(_expanded_size(child, sizes) for child in children)
    return known


def _syntax_problem(exc: Exception, shown: str, text: str) -> Problem:
    if isinstance(exc, yaml.reader.ReaderError):      # its str() is two lines, without the line
        line = text.count("\n", 0, exc.position) + 1
        character = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or b"\0")
        return Problem(shown, line, "", f"invalid YAML: character #x{character:04x} is not allowed ({exc.reason})")
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        return Problem(shown, line, "", f"invalid YAML: {exc.problem or exc.context}")
    if isinstance(exc, RecursionError):
        return Problem(shown, None, "", "invalid YAML: nested too deeply")
    return Problem(shown, None, "", f"invalid YAML: {exc}")


def _walk(
    node: yaml.Node, path: Path_, lines: dict, problems: list[Problem], shown: str, scalars: dict, checked: set[int],
    refused: set[Path_],
) -> None:
    """Lines and duplicate keys of any document, and the values and keys JSON cannot carry
    (each node checked once: an alias repeats a node, not its problems). A refused node is
    retagged as a string (a set as a mapping), so PyYAML builds the text as written, as
    _build does, and never meets a "!!int x" its constructor would crash on."""
    lines[path] = node.start_mark.line + 1
    check = id(node) not in checked
    checked.add(id(node))
    if check:
        problem = _node_problem(node, scalars)
        if problem is not None:
            problems.append(Problem(shown, node.start_mark.line + 1, format_path(path), problem))
            refused.add(path)
            node.tag = _MAP_TAG if isinstance(node, yaml.MappingNode) else _STR_TAG
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            child = (*path, key)
            if check and isinstance(key_node, yaml.ScalarNode) and key_node.tag not in (_STR_TAG, _MERGE_TAG):
                problems.append(Problem(shown, key_node.start_mark.line + 1, format_path(child), _key_problem(key_node)))
                refused.add(child)
                key_node.tag = _STR_TAG
            if key in seen:
                problems.append(
                    Problem(shown, key_node.start_mark.line + 1, format_path(child), "duplicate key")
                )
            seen.add(key)
            _walk(value_node, child, lines, problems, shown, scalars, checked, refused)
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, problems, shown, scalars, checked, refused)


def _node_problem(node: yaml.Node, scalars: dict) -> str | None:
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node, scalars)[1] if node.tag in scalars else None
    if node.tag == _SET_TAG:
        return "a YAML set (!!set), which JSON cannot carry: write a list instead"
    return None


def _scalar(node: yaml.ScalarNode, scalars: dict) -> tuple[Any, str | None]:
    """(value, None) for a scalar of one of _SCALAR_TAGS that JSON can carry, else (None, what
    to write instead). Dates and !!binary are refused before PyYAML builds them."""
    text = node.value
    if node.tag == _TIMESTAMP_TAG:
        what = "date" if _DATE.fullmatch(text) else "timestamp"
        return None, (f"{text} is read as a YAML {what}, which JSON cannot carry: "
                      f"quote it ({json.dumps(text)}) to keep it as text")
    if node.tag == _BINARY_TAG:
        return None, ("a !!binary value, which JSON cannot carry: "
                      "write the text itself, or its base64 as a plain string without the !!binary tag")
    try:
        value = scalars[node.tag](node)
    except (ValueError, KeyError, IndexError):   # what PyYAML's constructors raise for "!!int x", "!!bool x", "!!int ''"
        return None, f"{_short_text(text)} is not a valid !!{node.tag.removeprefix(_TAG)}"
    return value, _number_problem(value, text)


def _number_problem(value: Any, text: str) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        what = "NaN" if math.isnan(value) else "infinity"
        return (f"{_short_text(text)} is read as {what}, which JSON cannot carry: "
                f"write a finite number, or quote it to keep it as text")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_JSON_INT:
        return (f"{_short_text(text)} is beyond ±{MAX_JSON_INT} (2**53 - 1), the largest integer "
                f"a JSON number holds exactly: quote it to keep it as text")
    return None


def _key_problem(key_node: yaml.ScalarNode) -> str:
    what = key_node.tag.removeprefix(_TAG)
    what = {"int": "an integer", "float": "a number", "bool": "true or false", "null": "null",
            "timestamp": "a date"}.get(what, f"!!{what}" if what != key_node.tag else what)
    return f"this key is read as {what}, not text: quote it ({json.dumps(key_node.value)})"


def _short_text(text: str) -> str:
    """A scalar as written, for a message: quoted when empty or not printable, cut when long."""
    text = text if len(text) <= 40 else text[:37] + "..."
    return text if text and text.isprintable() else json.dumps(text)


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = _shown_key(part)
            out += f".{text}" if out else text
    return out


def _shown_key(key: Any) -> str:
    """A key as written, or JSON-quoted when it is empty, padded or holds a control character
    (a key with a newline would break the one-line ``Error:`` it appears in)."""
    text = str(key)
    if text and text.isprintable() and text.strip() == text:
        return text
    return json.dumps(text)
