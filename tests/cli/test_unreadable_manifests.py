"""Issue 12, point 2: no input is skipped silently.

Every entry of the manifests folder that should be read and cannot be (a dangling symlink, a
symlink loop, a FIFO, a device, a name that is not UTF-8, a file or folder without permission)
is an ``Error:`` naming it and why, exit 1, before anything is changed. Today's code ignored
them: a dangling ``regions.yaml`` made ``validate`` succeed and ``plan`` propose deleting
everything that file declared.

These tests run as root too (the CI containers do): links, FIFOs and odd names need no
permissions. Permission denied cannot be produced for root with chmod, so it is tested twice:
with chmod (skipped as root) and with the OS call answering EACCES (runs everywhere).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from qrvey_iac.adapters.manifest_files import manifest_files

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
SUMMARY_ONE = "1 problem found; nothing was changed."


def refused(project, *command: str) -> list[str]:
    result = project.run(*(command or ("validate",)))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    return result.stderr.splitlines()


def dangling(path: Path, target: str = "nowhere.yaml") -> None:
    path.symlink_to(target)


def test_a_dangling_manifest_symlink_is_refused(project):
    assert project.run("apply", "--auto-approve").exit_code == 0
    state, world = project.state_path.read_bytes(), project.world_path.read_bytes()
    regions = project.manifest("regions.yaml")
    regions.rename(project.root / "regions.yaml.moved")
    dangling(regions, "../regions.yaml.gone")
    expected = ["Error: manifests/regions.yaml: cannot read: a dangling symlink "
                "(its target ../regions.yaml.gone does not exist)", SUMMARY_ONE]
    assert refused(project) == expected
    for command in (("plan",), ("plan", "--refresh-only"), ("apply", "--auto-approve"), ("drift",)):
        assert refused(project, *command) == expected, command
    assert project.state_path.read_bytes() == state     # no delete planned, none applied
    assert project.world_path.read_bytes() == world


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


ENTRIES = {
    "dangling link": (lambda m: dangling(m / "extra.yaml"),
                      "manifests/extra.yaml: cannot read: a dangling symlink (its target nowhere.yaml does not exist)"),
    "dangling .yml link": (lambda m: dangling(m / "extra.yml"),
                           "manifests/extra.yml: cannot read: a dangling symlink (its target nowhere.yaml does not exist)"),
    "link loop": (lambda m: (m / "loop.yaml").symlink_to("loop.yaml"),
                  "manifests/loop.yaml: cannot read: a symlink loop (following its links leads back to one of them)"),
    "two-link loop": (lambda m: ((m / "a.yaml").symlink_to("b.yaml"), (m / "b.yaml").symlink_to("a.yaml")),
                      "manifests/a.yaml: cannot read: a symlink loop (following its links leads back to one of them)"),
    "FIFO": (lambda m: make_fifo(m / "pipe.yaml"), "manifests/pipe.yaml: cannot read: a FIFO (named pipe), not a regular file"),
    "device": (lambda m: (m / "null.yaml").symlink_to(os.devnull),
               "manifests/null.yaml: cannot read: a device, not a regular file"),
    "name not UTF-8": (lambda m: os.close(os.open(os.fsencode(m) + b"/caf\xe9.yaml", os.O_CREAT | os.O_WRONLY)),
                       "manifests/caf\\xe9.yaml: a file name that is not valid UTF-8: rename it"),
    "folder name not UTF-8": (lambda m: os.mkdir(os.fsencode(m) + b"/r\xe9gions"),
                              "manifests/r\\xe9gions: a folder whose name is not valid UTF-8: rename it"),
    "a newline in the name": (lambda m: dangling(m / "two\nlines.yaml"),      # one Error: line all the same
                              '"manifests/two\\nlines.yaml": cannot read: a dangling symlink '
                              '(its target nowhere.yaml does not exist)'),
    "folder link loop": (lambda m: ((m / "sub").mkdir(), (m / "sub" / "up").symlink_to("..")),
                         "manifests/sub/up: a symlink loop: this folder link leads back to a folder that holds it"),
    "dangling link without extension (maybe a folder)": (
        lambda m: dangling(m / "shared", "../shared-manifests"),
        "manifests/shared: cannot read: a dangling symlink (its target ../shared-manifests does not exist)"),
    "deep in a sub-folder": (lambda m: ((m / "a" / "b").mkdir(parents=True), dangling(m / "a" / "b" / "c.yaml")),
                             "manifests/a/b/c.yaml: cannot read: a dangling symlink (its target nowhere.yaml does not exist)"),
}


@pytest.mark.parametrize("case", sorted(ENTRIES))
def test_each_unreadable_entry_is_named_with_its_reason(project, case):
    make, message = ENTRIES[case]
    make(project.root / "manifests")
    lines = refused(project)
    assert lines[0] == f"Error: {message}"
    assert lines[-1].endswith("found; nothing was changed.")
    assert not project.state_path.parent.exists()


@pytest.mark.parametrize("command", [("plan",), ("apply", "--auto-approve")])
def test_plan_and_apply_stop_before_writing_anything(project, command):
    make_fifo(project.manifest("pipe.yaml"))      # would also hang a reader that opened it blocking
    assert refused(project, *command)[0] == (
        "Error: manifests/pipe.yaml: cannot read: a FIFO (named pipe), not a regular file")
    assert not project.state_path.parent.exists()


def test_every_unreadable_entry_is_reported_at_once_with_the_other_problems(project):
    dangling(project.manifest("one.yaml"))
    make_fifo(project.manifest("two.yaml"))
    project.manifest("bad.yaml").write_text("kind: Widget\n")
    assert refused(project) == [
        "Error: manifests/bad.yaml:1: kind: unknown kind 'Widget' (expected 'Connection', 'Dataset', 'DatasetView', 'Moved', 'Removed')",
        "Error: manifests/one.yaml: cannot read: a dangling symlink (its target nowhere.yaml does not exist)",
        "Error: manifests/two.yaml: cannot read: a FIFO (named pipe), not a regular file",
        "3 problems found; nothing was changed.",
    ]


NOT_MANIFESTS = {
    "a dangling link that is not a manifest by its name": lambda m: dangling(m / "README.md"),
    "an editor's lock link (emacs: .#name)": lambda m: dangling(m / ".#sales.yaml", "user@host.1234:567"),
    "a hidden folder that cannot be listed": lambda m: dangling(m / ".git"),
    "a FIFO that is not a manifest by its name": lambda m: make_fifo(m / "notes.txt"),
}


@pytest.mark.parametrize("case", sorted(NOT_MANIFESTS))
def test_entries_that_are_not_manifests_are_left_alone(project, case):
    NOT_MANIFESTS[case](project.root / "manifests")
    result = project.run("validate")
    assert result.exit_code == 0, result.output
    assert "11 resources are valid" in result.output


def test_a_symlinked_folder_is_read_like_any_other(project):
    elsewhere = project.root / "shared-manifests"
    elsewhere.mkdir()
    project.manifest("regions.yaml").rename(elsewhere / "regions.yaml")
    project.manifest("regions").symlink_to("../shared-manifests")
    result = project.run("validate")
    assert result.exit_code == 0, result.output
    assert "11 resources are valid" in result.output


def test_a_manifests_folder_behind_a_dangling_link_is_named(project):
    manifests = project.root / "manifests"
    manifests.rename(project.root / "gone")
    manifests.symlink_to("elsewhere")
    assert refused(project) == [
        "Error: manifests: manifests folder: cannot read: a dangling symlink (its target elsewhere does not exist)",
        SUMMARY_ONE]


def test_a_config_file_that_is_a_fifo_or_a_dangling_link_is_named(project):
    make_fifo(project.root / "pipe.yaml")
    assert refused(project, "validate", "--config", "pipe.yaml")[0] == (
        "Error: pipe.yaml: cannot read: a FIFO (named pipe), not a regular file")
    dangling(project.root / "linked.yaml", "qrvey-iac.moved.yaml")
    assert refused(project, "plan", "--config", "linked.yaml")[0] == (
        "Error: linked.yaml: cannot read: a dangling symlink (its target qrvey-iac.moved.yaml does not exist)")


# -- permission denied ---------------------------------------------------------------------

@pytest.mark.skipif(AS_ROOT, reason="runs as root here: root reads files and folders whatever their mode, "
                                    "so chmod cannot make them unreadable (see the EACCES tests below)")
def test_an_unreadable_file_and_folder_are_named_chmod(project):
    project.manifest("regions.yaml").chmod(0)
    (project.root / "manifests" / "more").mkdir()
    (project.root / "manifests" / "more").chmod(0)
    try:
        assert refused(project)[:2] == [
            "Error: manifests/more: cannot list this folder: permission denied",
            "Error: manifests/regions.yaml: cannot read: permission denied",
        ]
    finally:
        (project.root / "manifests" / "more").chmod(0o755)


def denying(monkeypatch, name: str, denied: Path) -> None:
    """Make os.<name> answer EACCES for ``denied``, as it does for a user without permission."""
    real = getattr(os, name)

    def call(path, *args, **kwargs):
        if Path(os.fsdecode(path)).resolve() == denied.resolve():
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, name, call)


def test_a_file_without_read_permission_is_named(project, monkeypatch):
    denying(monkeypatch, "open", project.manifest("regions.yaml"))
    assert refused(project) == ["Error: manifests/regions.yaml: cannot read: permission denied", SUMMARY_ONE]


def test_a_sub_folder_that_cannot_be_listed_is_named(project, monkeypatch):
    more = project.root / "manifests" / "more"
    more.mkdir()
    project.manifest("regions.yaml").rename(more / "regions.yaml")
    denying(monkeypatch, "scandir", more)
    assert refused(project) == ["Error: manifests/more: cannot list this folder: permission denied", SUMMARY_ONE]


def test_the_listing_is_in_path_order_as_before(tmp_path):
    for name in ("b.yaml", "a/z.yml", "a.yaml", "a/b/c.yaml", "c.txt", ".hidden.yaml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    files, refused_entries = manifest_files(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in files] == ["a/b/c.yaml", "a/z.yml", "a.yaml", "b.yaml"]
    assert refused_entries == []


@pytest.mark.anyio
async def test_an_unreadable_entry_fails_the_load_before_the_refresh_sends_a_call(tmp_path):
    from qrvey_iac.adapters.manifest_files import load_manifest_async
    from qrvey_iac.core.errors import ManifestError
    from qrvey_iac.core.keys import AppRef
    from qrvey_iac.core.state import ResourceState, State
    from qrvey_iac.engine import Engine

    class Recording:
        def __init__(self) -> None:
            self.calls: list[str] = []

        async def read(self, app, dataset_id):
            self.calls.append(dataset_id)
            return {"datasetId": dataset_id}

    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "orders.yaml").write_text("kind: Dataset\n")
    dangling(folder / "regions.yaml")
    state = State(resources={"dataset.orders": ResourceState(kind="Dataset", datasetId="d-1", userId="u", appId="a")})
    qrvey = Recording()
    with pytest.raises(ManifestError) as raised:
        await Engine(qrvey, store=None).refresh_while(state, load_manifest_async(folder, {"sales": AppRef("u", "a")}, {}, {}))
    assert {p.file for p in raised.value.problems} == {str(folder / "orders.yaml"), str(folder / "regions.yaml")}
    assert qrvey.calls == []        # cancelled before it ran: nothing was asked of Qrvey
