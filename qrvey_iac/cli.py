"""The command line: the composition root and the only place that prints or exits."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import click

from qrvey_iac import __version__
from qrvey_iac.core.errors import ConfigError, InputError, Problem, QrveyIacError
from qrvey_iac.core.manifest import Manifest
from qrvey_iac.core.plan import Plan
from qrvey_iac.core.render import render_json, render_text, summary_line
from qrvey_iac.wiring import Workspace

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Console:
    """stderr progress with elapsed time; stdout is kept for plans."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def progress(self, message: str) -> None:
        click.echo(f"[{time.monotonic() - self.started:6.1f}s] {message}", err=True)


def reports_errors(fn):
    """The single error boundary: ``Error: ...`` on stderr, exit code, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except InputError as exc:
            for problem in exc.problems:
                click.echo(f"Error: {problem}", err=True)
            noun = "problem" if len(exc.problems) == 1 else "problems"
            click.echo(f"{len(exc.problems)} {noun} found; nothing was changed.", err=True)
            sys.exit(exc.exit_code)
        except QrveyIacError as exc:
            _fail(kwargs, str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail(kwargs, "interrupted", 130)
        except Exception as exc:  # noqa: BLE001 - the boundary: nothing escapes as a traceback
            _fail(kwargs, f"internal error: {exc.__class__.__name__}: {exc} (run with --debug for details)", 1)

    return wrapper


def _fail(kwargs: dict, message: str, code: int) -> None:
    if kwargs.get("debug"):
        traceback.print_exc()
    click.echo("Error: " + message.replace("\n", "\n  ").rstrip(), err=True)
    sys.exit(code)


def environment_options(fn):
    fn = click.option("--debug", is_flag=True, help="Show tracebacks and HTTP debug logs.")(fn)
    fn = click.option("--var", "variables", multiple=True, metavar="KEY=VALUE",
                      help="Set a manifest variable (repeatable); wins over the config.")(fn)
    fn = click.option("--config", default="qrvey-iac.yaml", show_default=True, metavar="FILE",
                      help="Project config with the environments.")(fn)
    fn = click.option("--env", "env", metavar="NAME",
                      help="Environment from the config (default: its defaultEnvironment).")(fn)
    return fn


def writing_options(fn):
    fn = click.option("--lock-timeout", default="0", show_default=True, metavar="DURATION",
                      help="Wait this long for the state lock (0, 30s, 5m).")(fn)
    fn = click.option("--parallelism", type=click.IntRange(1, 256), metavar="N",
                      help="API calls in flight at once (default 10).")(fn)
    return fn


def parse_duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    if not match:
        raise ConfigError([Problem("--lock-timeout", None, "", f"not a duration: {text!r} (try 0, 30s, 5m)")])
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def parse_variables(items: tuple[str, ...]) -> dict[str, Any]:
    parsed = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError([Problem("--var", None, "", f"expected KEY=VALUE, got {item!r}")])
        parsed[key] = value
    return parsed


def open_workspace(config: str, env: str | None, variables: tuple[str, ...]) -> Workspace:
    return Workspace.open(config, env, parse_variables(variables))


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="qrvey-iac")
def cli() -> None:
    """Qrvey datasets, shared datasets and dataset views as code.

    Write YAML manifests, review `qrvey-iac plan`, then `qrvey-iac apply`.
    With `endpoint: local` (the default example) everything runs against an
    embedded Qrvey emulator: no account needed.
    """


@cli.command()
@environment_options
@reports_errors
def validate(env, config, variables, debug):
    """Check manifests and config offline: syntax, fields, references, cycles."""
    workspace = open_workspace(config, env, variables)
    manifest = workspace.manifest()
    kinds = [r.kind for r in manifest.resources.values()]
    click.echo(
        f"Success: {len(kinds)} resources are valid "
        f"({kinds.count('Dataset')} datasets, {kinds.count('DatasetView')} views) "
        f"for environment {workspace.environment.name}."
    )


@cli.command()
@environment_options
@writing_options
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="How to print the plan on stdout.")
@click.option("--out", type=click.Path(dir_okay=False), help="Also save the plan as JSON to FILE.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when the plan has changes, 0 when none.")
@reports_errors
def plan(env, config, variables, debug, lock_timeout, parallelism, output, out, detailed_exitcode):
    """Show what apply would change, reading the live objects from Qrvey."""
    workspace = open_workspace(config, env, variables)
    manifest = workspace.manifest()
    result = asyncio.run(_plan(workspace, manifest, parse_duration(lock_timeout), parallelism, "plan"))
    secrets = manifest.secrets | workspace.secrets()
    click.echo(render_json(result, secrets) if output == "json" else render_text(result, secrets), nl=False)
    if out:
        Path(out).write_text(render_json(result, secrets), encoding="utf-8")
    if detailed_exitcode and result.has_changes:
        sys.exit(2)


async def _plan(workspace: Workspace, manifest: Manifest, lock_timeout: float, parallelism, command: str) -> Plan:
    console = Console()
    with workspace.store.lock(command, lock_timeout):
        async with workspace.engine(console.progress, parallelism) as engine:
            state = await _settled(engine, workspace)
            result, _ = await engine.plan(manifest, state, workspace.environment.name)
            return result


async def _settled(engine, workspace: Workspace):
    state = workspace.store.load()
    if state.journal:
        state = engine.save(await engine.settle_journal(state))
    return state


@cli.command()
@environment_options
@writing_options
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@reports_errors
def apply(env, config, variables, debug, lock_timeout, parallelism, auto_approve):
    """Make Qrvey match the manifests: plan, confirm, then create/update/delete."""
    workspace = open_workspace(config, env, variables)
    manifest = workspace.manifest()
    asyncio.run(_converge(workspace, manifest, parse_duration(lock_timeout), parallelism, auto_approve, "apply"))


@cli.command()
@environment_options
@writing_options
@click.option("--auto-approve", is_flag=True, help="Destroy without asking for confirmation.")
@reports_errors
def destroy(env, config, variables, debug, lock_timeout, parallelism, auto_approve):
    """Delete every object in the state (views first)."""
    workspace = open_workspace(config, env, variables)
    asyncio.run(_converge(workspace, Manifest(), parse_duration(lock_timeout), parallelism, auto_approve, "destroy"))


async def _converge(workspace: Workspace, manifest: Manifest, lock_timeout: float, parallelism,
                    auto_approve: bool, command: str) -> None:
    console = Console()
    secrets = manifest.secrets | workspace.secrets()
    with workspace.store.lock(command, lock_timeout):
        async with workspace.engine(console.progress, parallelism) as engine:
            state = await _settled(engine, workspace)
            result, _ = await engine.plan(manifest, state, workspace.environment.name)
            click.echo(render_text(result, secrets), nl=False)
            if not result.has_changes:
                return
            _confirm(command, auto_approve)
            await engine.apply(result, state)
            counts = result.summary()
            click.echo(
                f"\nApply complete! Resources: {counts['create']} created, {counts['update']} updated, "
                f"{counts['replace']} replaced, {counts['delete']} destroyed"
                f"{', %d shared' % counts['share'] if counts['share'] else ''}"
                f"{', %d unshared' % counts['unshare'] if counts['unshare'] else ''}."
            )


def _confirm(command: str, auto_approve: bool) -> None:
    if auto_approve:
        return
    click.echo(f"\nDo you want to perform these actions? Only 'yes' will be accepted.")
    try:
        answer = click.prompt("  Enter a value", default="", show_default=False)
    except click.Abort:
        answer = ""
    if answer.strip() != "yes":
        raise QrveyIacError(f"{command} cancelled: nothing was changed (pass --auto-approve to skip the question)")


@cli.group()
def emulator() -> None:
    """The Qrvey API emulator: a fake Qrvey for tests, demos and benchmarks."""


@emulator.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (loopback by default).")
@click.option("--port", default=8787, show_default=True, type=click.IntRange(0, 65535))
@click.option("--api-key", default="local", show_default=True, help="The x-api-key every call must send.")
@click.option("--data", type=click.Path(dir_okay=False), help="JSON file to load the world from and save it to.")
@click.option("--latency-ms", default=0.0, show_default=True, type=click.FloatRange(0), help="Added to every call.")
@click.option("--faults", metavar="SPEC", help="Fault injection rules (see docs/emulator.md).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seeds ids and fault dice.")
@click.option("--terminal-status", type=click.Choice(["LOADED", "ACTIVE"]), default="LOADED", show_default=True)
@click.option("--on-source-delete", type=click.Choice(["orphan", "refuse", "cascade"]), default="orphan",
              show_default=True, help="What deleting a view's source does to the view.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@reports_errors
def emulator_serve(host, port, api_key, data, latency_ms, faults, seed, terminal_status, on_source_delete, debug):
    """Serve the emulator over HTTP until interrupted (Ctrl-C)."""
    from qrvey_iac.emulator import EmulatorConfig, parse_faults
    from qrvey_iac.emulator.serve import serve

    try:
        fault_set = parse_faults(faults) if faults else None
    except ValueError as exc:
        raise ConfigError([Problem("--faults", None, "", str(exc))]) from None
    config = EmulatorConfig(api_key=api_key, data_file=Path(data) if data else None, seed=seed,
                            latency_ms=latency_ms, faults=fault_set, terminal_status=terminal_status,
                            on_source_delete=on_source_delete)
    click.echo(f"Qrvey emulator on http://{host}:{port}/devapi/v4 (x-api-key: as given); Ctrl-C stops it.", err=True)
    serve(config, host=host, port=port)


def main() -> None:
    cli(prog_name="qrvey-iac")
