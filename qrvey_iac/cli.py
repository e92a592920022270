"""The command line: the composition root and the only place that prints or exits."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from qrvey_iac import __version__
from qrvey_iac.adapters.runtime import large_batch
from qrvey_iac.cli_doctor import doctor
from qrvey_iac.cli_progress import make_meter
from qrvey_iac.cli_support import KNOWN_SECRETS, Commands, environment_options, open_workspace, reports_errors
from qrvey_iac.cli_tools import emulator, export, state
from qrvey_iac.core.errors import ConfigError, Problem, StoppedError
from qrvey_iac.core.manifest import Manifest
from qrvey_iac.core.plan import OPERATIONS, Plan, drift_part, manifest_part
from qrvey_iac.core.render import load_count, render_json, render_text
from qrvey_iac.core.secrets import mask_text, seal_plan
from qrvey_iac.engine import Stop
from qrvey_iac.flows import RunOptions, apply_saved, converge, import_one, load_datasets, make_plan, read_drift

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
FORMATS = click.Choice(["text", "markdown", "json"])
T = TypeVar("T")


class Console:
    """stdout for plans, stderr for progress (with elapsed time) and questions.

    Progress goes through a meter (cli_progress): on a terminal a live counter line under
    the messages, elsewhere plain lines. The summary line of a retried Qrvey call (the
    ``qrvey_iac.http`` logger's warnings) is shown as a progress line too; ``--debug`` shows
    every attempt through its own log handler instead.
    """

    def __init__(self, secrets: frozenset[str] = frozenset(), output: str = "text", debug: bool = False) -> None:
        self.began = time.monotonic()
        self.secrets = secrets
        self.output = output
        self.meter = make_meter(debug)
        KNOWN_SECRETS.update(secrets)
        show_http_warnings(self, debug)

    def progress(self, message: str) -> None:
        message = mask_text(message, self.secrets)
        self.meter.line(f"[{time.monotonic() - self.began:6.1f}s] {message}")

    def started(self, total: int, what: str) -> None:
        self.meter.started(total, what)

    def advanced(self, count: int = 1) -> None:
        self.meter.advanced(count)

    def finished(self) -> None:
        self.meter.finished()

    def learn_secrets(self, secrets: frozenset[str]) -> None:
        """Values read from the environment by the manifests: masked from here on."""
        self.secrets = self.secrets | secrets
        KNOWN_SECRETS.update(secrets)

    def show_plan(self, plan: Plan) -> None:
        click.echo(render(plan, self.output, self.secrets), nl=False)

    def confirm(self, command: str) -> bool:
        click.echo("\nDo you want to perform these actions? Only 'yes' will be accepted.", err=True)
        try:
            with interruptible():
                answer = click.prompt("  Enter a value", default="", show_default=False, err=True)
        except click.Abort:
            return False
        return answer.strip() == "yes"


class _ToConsole(logging.Handler):
    """The ``qrvey_iac.http`` logger's warnings (one per retried call) as progress lines."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.WARNING)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.progress(record.getMessage())


def show_http_warnings(console: Console, debug: bool) -> None:
    """Send the HTTP warnings to ``console`` (the one of the command now running), or, with
    ``--debug``, leave them to the debug handler, which shows every attempt."""
    http = logging.getLogger("qrvey_iac.http")
    for handler in [h for h in http.handlers if isinstance(h, _ToConsole)]:
        http.removeHandler(handler)      # an earlier command's (tests run many in one process)
    if not debug:
        http.addHandler(_ToConsole(console))


def render(plan: Plan, output: str, secrets: frozenset[str]) -> str:
    if output == "json":
        return render_json(plan, secrets)
    if output == "markdown":
        from qrvey_iac.core.render_markdown import render_markdown

        return render_markdown(plan, secrets)
    return render_text(plan, secrets)


def run_async(coroutine: Coroutine[Any, Any, T], stop: Stop | None = None) -> T:
    """``asyncio.run``, with the result kept out of the task, stopping cleanly on a signal.

    On the way out, asyncio.run's SIGINT bookkeeping formats the repr of its finished
    task, result included: for a large plan that is pure waste.

    SIGTERM and SIGINT (what CI cancellation sends) set ``stop``: a running apply starts no
    new call, lets the ones in flight finish, saves the state and raises StoppedError with
    its report; a second signal cancels the calls in flight (their journal entries are on
    disk before they are sent). Outside an apply there are only reads: the command is
    cancelled at once. Either way the lock is released on the way out and the exit code is
    128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
    """
    box: list[T] = []
    stop = stop or Stop()

    async def main() -> None:
        with stopping_on_signals(asyncio.get_running_loop(), asyncio.current_task(), stop):
            box.append(await coroutine)

    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        if not stop.requested:
            raise
        raise StoppedError(f"interrupted by {stop.signal_name} while only reading; nothing was being changed "
                           "in Qrvey and the state holds everything done before", stop.exit_code) from None
    return box[0]


STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s)


@contextmanager
def stopping_on_signals(loop: asyncio.AbstractEventLoop, task: asyncio.Task, stop: Stop) -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT request ``stop`` (see run_async)."""

    def on_signal(signum: int, _frame: Any) -> None:
        # runs in the main thread between two bytecodes: only flags and thread-safe calls here
        first = not stop.requested
        stop.request(signal.Signals(signum).name, 128 + signum)
        if first and stop.applying:
            loop.call_soon_threadsafe(_say, f"received {stop.signal_name}: letting the calls in flight finish "
                                      "and starting no new one (send it again to cancel them)")
        else:
            loop.call_soon_threadsafe(task.cancel)

    if threading.current_thread() is not threading.main_thread():
        yield                   # signals reach the main thread only
        return
    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _say(message: str) -> None:
    click.echo(message, err=True)


@contextmanager
def interruptible() -> Iterator[None]:
    """For a question to the user: the loop is blocked in input(), so a signal interrupts
    the prompt itself (nothing has been changed yet)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.default_int_handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


LOCK_TIMEOUT_HELP = "Wait this long for the state lock (0, 30s, 5m)."
PLAN_LOCK_TIMEOUT_HELP = ("plan takes no lock, except to settle operations an interrupted run left in the state: "
                          "wait this long for it then (0, 30s, 5m); still held, they are read as settled and "
                          "not recorded.")


def run_options(fn):
    """The options of the commands that plan and apply."""
    return _run_options(fn, LOCK_TIMEOUT_HELP)


def plan_run_options(fn):
    """run_options, with what --lock-timeout means to plan."""
    return _run_options(fn, PLAN_LOCK_TIMEOUT_HELP)


def _run_options(fn, lock_help: str):
    options = [
        click.option("--parallelism", type=click.IntRange(1, 256), metavar="N",
                     help="API calls in flight at once (default 10)."),
        click.option("--rate-limit", metavar="N/s", help="At most N API requests per second (e.g. 20/s)."),
        click.option("--lock-timeout", default="0", show_default=True, metavar="DURATION", help=lock_help),
        click.option("--target", "targets", multiple=True, metavar="ADDR",
                     help="Only this address and what it needs (repeatable)."),
        click.option("--exclude", "excludes", multiple=True, metavar="ADDR",
                     help="Leave out this address and what needs it (repeatable)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def load_timeout_option(fn):
    """--load-timeout, for the commands that wait for dataset loads (apply, load)."""
    return click.option(
        "--load-timeout", default="30m", show_default=True, metavar="DURATION",
        help="Wait this long for each dataset load to end LOADED or ACTIVE (e.g. 90s, 30m, 2h); a load still "
             "running then is an error, and the next plan or apply waits for it.")(fn)


def parse_duration(text: str, option: str = "--lock-timeout") -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    if not match:
        raise ConfigError([Problem(option, None, "", f"not a duration: {text!r} (try 0, 30s, 5m)")])
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def parse_rate(text: str | None) -> float | None:
    if text is None:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(?:/s)?", text.strip())
    if not match or float(match.group(1)) <= 0:
        raise ConfigError([Problem("--rate-limit", None, "", f"expected N/s with N > 0, e.g. 20/s; got {text!r}")])
    return float(match.group(1))


def options_of(kwargs: dict[str, Any], command: str, pin: bool = True) -> RunOptions:
    return RunOptions(
        pin=pin,
        lock_timeout=parse_duration(kwargs.get("lock_timeout", "0")),
        parallelism=kwargs.get("parallelism"),
        rate_limit=parse_rate(kwargs.get("rate_limit")),
        targets=tuple(kwargs.get("targets", ())),
        excludes=tuple(kwargs.get("excludes", ())),
        refresh_only=kwargs.get("refresh_only", False),
        auto_approve=kwargs.get("auto_approve", False),
        command=command,
        load_timeout=parse_duration(kwargs.get("load_timeout") or "30m", "--load-timeout"),
    )


@click.group(cls=Commands, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="qrvey-iac")
def cli() -> None:
    """Qrvey datasets, shared datasets and dataset views as code.

    Write YAML manifests, review `qrvey-iac plan`, then `qrvey-iac apply`.
    With `endpoint: local` (the example config) everything runs against an
    embedded Qrvey emulator: no account needed.

    Exit codes: 0 ok, 1 error (a usage error too, and a reader of stdout that went
    away), 2 changes present (plan --detailed-exitcode) or drift present (drift),
    130 / 143 stopped by SIGINT / SIGTERM (calls in flight finish, the state is saved).
    """


@cli.command()
@environment_options
@reports_errors
def validate(**kwargs):
    """Check config and manifests offline: syntax, fields, references, cycles."""
    workspace = open_workspace(kwargs)
    manifest = workspace.manifest()
    # every kind's plural is a singular and an s ("1 connection, 6 datasets")
    counts = ", ".join(f"{count} {plural if count != 1 else plural[:-1]}" for plural, count in manifest.counts())
    instructions = ""
    if manifest.moves or manifest.removals:
        instructions = f", and {len(manifest.moves)} Moved and {len(manifest.removals)} Removed documents,"
    click.echo(f"Success: {len(manifest.resources)} resources are valid ({counts}){instructions} "
               f"for environment {workspace.environment.name}.")


@cli.command()
@environment_options
@plan_run_options
@click.option("--format", "output", type=FORMATS, default="text", show_default=True,
              help="Plan on stdout as text, a PR comment (markdown) or versioned JSON.")
@click.option("--out", type=click.Path(dir_okay=False), metavar="FILE",
              help="Save the plan (JSON) for `apply FILE`; it holds no secrets. Never a state, backup or lock file.")
@click.option("--refresh-only", is_flag=True, help="Show only what changed outside qrvey-iac (drift).")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when the plan has changes, 0 when none.")
@reports_errors
def plan(**kwargs):
    """Show what apply would change, reading the live objects from Qrvey.

    Takes no state lock: it runs while an apply does, and writes nothing (unless the state
    holds operations an interrupted run left unsettled: see --lock-timeout).
    """
    workspace = open_workspace(kwargs)
    if kwargs["out"] and (what := workspace.state_file_at(Path(kwargs["out"]))):
        raise ConfigError([Problem("--out", None, "", f"{kwargs['out']} is {what}: a plan saved there would "
                                   "destroy it; save the plan to another file")])
    console = Console(workspace.secrets(), kwargs["output"], kwargs["debug"])
    with large_batch():
        # fingerprints only for a plan that is saved or shown as JSON (they are in both)
        options = options_of(kwargs, "plan", pin=bool(kwargs["out"]) or kwargs["output"] == "json")
        result = run_async(make_plan(workspace, workspace.manifest_async, console, options), options.stop)
    console.show_plan(result)
    if kwargs["out"]:
        from qrvey_iac.adapters.plan_file import save_plan

        sealed = seal_plan(result, workspace.sealer())
        save_plan(Path(kwargs["out"]), render_json(sealed, console.secrets))
        console.progress(f"Saved the plan to {kwargs['out']}: apply it with `qrvey-iac apply {kwargs['out']}`")
    if kwargs["detailed_exitcode"] and result.has_changes:
        sys.exit(2)


@cli.command()
@click.argument("plan_file", required=False, type=click.Path(dir_okay=False))
@environment_options
@run_options
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@load_timeout_option
@reports_errors
def apply(plan_file, **kwargs):
    """Make Qrvey match the manifests: plan, confirm, apply.

    With PLAN_FILE (from `plan --out`), apply exactly that reviewed plan, and
    refuse if the state, the manifests or any object it read has changed since.
    """
    workspace = open_workspace(kwargs)
    console = Console(workspace.secrets(), debug=kwargs["debug"])
    options = options_of(kwargs, "apply", pin=bool(plan_file))     # a saved plan is checked against them
    if plan_file:
        from qrvey_iac.adapters.plan_file import load_plan

        saved = load_plan(Path(plan_file))
        applied = run_async(apply_saved(workspace, workspace.manifest_async, saved, console, options), options.stop)
    else:
        applied = run_async(converge(workspace, workspace.manifest_async, console, options), options.stop)
    report_applied(applied)


@cli.command()
@environment_options
@run_options
@click.option("--auto-approve", is_flag=True, help="Destroy without asking for confirmation.")
@reports_errors
def destroy(**kwargs):
    """Delete every object in the state, views first (protected ones refuse)."""
    workspace = open_workspace(kwargs)
    console = Console(workspace.secrets(), debug=kwargs["debug"])
    options = options_of(kwargs, "destroy", pin=False)
    applied = run_async(converge(workspace, nothing_wanted, console, options), options.stop)
    report_destroyed(applied)


@cli.command()
@click.argument("addresses", nargs=-1, required=True, metavar="ADDR...")
@environment_options
@click.option("--parallelism", type=click.IntRange(1, 256), metavar="N", help="Loads started at once (default 10).")
@click.option("--lock-timeout", default="0", show_default=True, metavar="DURATION",
              help="Wait this long for the state lock (0, 30s, 5m).")
@load_timeout_option
@reports_errors
def load(addresses, **kwargs):
    """Load the named datasets now and wait for each, as apply does.

    Each ADDR is a dataset the state records (`load dataset.orders`). A load already running is waited for, not
    started again; one that ends FAILED, or still runs after --load-timeout, is an error
    naming the dataset (exit 1).
    """
    workspace = open_workspace(kwargs)
    console = Console(workspace.secrets(), debug=kwargs["debug"])
    options = options_of(kwargs, "load")
    loaded = run_async(load_datasets(workspace, tuple(addresses), console, options), options.stop)
    for line in loaded:
        click.echo(f"Loaded {line}")


async def nothing_wanted() -> Manifest:
    """destroy's manifest: no resources, so every object in the state is planned for deletion."""
    return Manifest()


def report_destroyed(plan: Plan | None) -> None:
    if plan is not None and plan.has_changes:
        click.echo(f"\nDestroy complete! Resources: {plan.summary()['delete']} destroyed.")


def report_applied(plan: Plan | None) -> None:
    if plan is None or not plan.has_changes:
        return
    counts = plan.summary()
    extras = "".join(f", {counts[op]} {OPERATIONS[op].progress[1]}"
                     for op in ("share", "unshare", "move", "forget") if counts[op])
    loads = load_count(plan)
    extras += f", {loads} loaded" if loads else ""
    imported = f"{counts['import']} imported, " if counts["import"] else ""
    click.echo(
        f"\nApply complete! Resources: {imported}{counts['create']} created, {counts['update']} updated, "
        f"{counts['replace']} replaced, {counts['delete']} destroyed{extras}."
    )


@cli.command()
@environment_options
@click.option("--format", "output", type=FORMATS, default="text", show_default=True)
@click.option("--parallelism", type=click.IntRange(1, 256), metavar="N", help="API calls in flight at once.")
@reports_errors
def drift(**kwargs):
    """Report what differs between Qrvey, the state and the manifests (read-only).

    Exit 0 when everything matches, 2 when anything differs, 1 on an error. A change to
    protect alone is recorded in the state only: it is listed, and is not counted.
    """
    workspace = open_workspace(kwargs)
    console = Console(workspace.secrets(), kwargs["output"], kwargs["debug"])
    with large_batch():
        options = options_of(kwargs, "drift")
        result, undecided = run_async(read_drift(workspace, workspace.manifest_async, console, options),
                                      options.stop)
    if kwargs["output"] == "text":
        click.echo(render_drift_text(result, console.secrets), nl=False)
    else:
        console.show_plan(result)
    for line in undecided:
        click.echo(f"Unsettled operation that needs a decision: {mask_text(line, console.secrets)}", err=True)
    for line in result.untracked:
        click.echo(f"Marked by environment {result.environment} but in no state: {mask_text(line, console.secrets)}",
                   err=True)
    if differs(result) or undecided or result.untracked:
        sys.exit(2)


def differs(plan: Plan) -> bool:
    """What `drift` exits 2 for: any change but one the state alone records (protect)."""
    return any(not action.state_only for action in plan.changes)


def render_drift_text(plan: Plan, secrets: frozenset[str]) -> str:
    """The drift first, then what the manifests change; an action with both is in both, each
    part with its own fields. A change to protect alone is listed apart: it is not drift."""
    drifted = [part for part in map(drift_part, plan.changes) if part]
    pending = [part for part in map(manifest_part, plan.changes) if part and not part.state_only]
    lifecycle = [part for part in map(manifest_part, plan.changes) if part and part.state_only]
    if not plan.has_changes:
        return f"No drift: Qrvey, the state and the manifests agree (environment {plan.environment}).\n"
    head = "" if differs(plan) else f"No drift: Qrvey matches the manifests (environment {plan.environment}).\n\n"
    sections = [("Changed outside qrvey-iac", drifted), ("Manifest changes not applied yet", pending),
                ("Recorded in the state only by the next apply, not drift", lifecycle)]
    parts = [f"{title} ({len(actions)}):\n\n"
             + render_text(plan.model_copy(update={"actions": tuple(actions)}), secrets)
             for title, actions in sections if actions]
    return head + "\n".join(parts)


@cli.command("import")
@click.argument("address")
@click.argument("dataset_id")
@environment_options
@click.option("--lock-timeout", default="0", metavar="DURATION", help="Wait this long for the state lock (0, 30s, 5m).")
@reports_errors
def import_command(address, dataset_id, **kwargs):
    """Adopt DATASET_ID, an existing dataset or view, as ADDRESS (e.g. dataset.orders).

    ADDRESS must be written in the manifests (its app is where the object must be) and not be
    in the state yet. The object is read and recorded in the state at once; nothing is written
    to Qrvey. Then run `qrvey-iac plan`: it shows what the object still needs to match its
    manifest (the ownership marker at least, for an object made outside qrvey-iac), and apply
    makes it. To declare adoptions in a reviewed pull request instead, write
    `spec.adopt: {datasetId: ID}` in the manifest: plan then shows an import.
    """
    workspace = open_workspace(kwargs)
    console = Console(workspace.secrets(), "text", kwargs["debug"])
    options = options_of(kwargs, "import")
    _, later = run_async(import_one(workspace, workspace.manifest_async, console, options, address, dataset_id),
                         options.stop)
    click.echo(f"Imported {dataset_id} as {address} (recorded in the state; nothing was changed in Qrvey).")
    if later:
        click.echo(f"It differs from its manifest ({', '.join(later)}): run `qrvey-iac plan` to see the changes "
                   "and `qrvey-iac apply` to make them.")
    else:
        click.echo("It matches its manifest: `qrvey-iac plan` shows no change for it.")


@cli.command()
def schema():
    """Print the JSON Schema of the manifest format (for editors and CI)."""
    from qrvey_iac.core.schema import manifest_schema

    click.echo(json.dumps(manifest_schema(), indent=2, sort_keys=True))


def main() -> None:
    """The console script. A reader of stdout that went away (``| head``) ends it with exit
    code 1 and no traceback: click.echo flushes every line, and click handles the
    BrokenPipeError that raises (the error boundary lets it through)."""
    cli(prog_name="qrvey-iac")


cli.add_command(state)
cli.add_command(export)
cli.add_command(emulator)
cli.add_command(doctor)
