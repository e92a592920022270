"""Secondary commands: state inspection and surgery, export, and the emulator server."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import click

from qrvey_iac.cli_support import environment_options, open_workspace, reports_errors
from qrvey_iac.core.errors import ConfigError, InputError, Problem, StateError, did_you_mean, did_you_mean_address
from qrvey_iac.core.kinds import KINDS
from qrvey_iac.core.kinds.base import ADDRESS_SYNTAX
from qrvey_iac.core.order import natural_key
from qrvey_iac.core.secrets import mask_value
from qrvey_iac.core.state import State


@click.group()
def state() -> None:
    """Inspect and repair the state (the record of what qrvey-iac manages)."""


@state.command("list")
@environment_options
@reports_errors
def state_list(**kwargs):
    """One line per managed resource: address, kind, app and dataset id."""
    current = open_workspace(kwargs).store.read()
    for address, resource in sorted(current.resources.items(), key=lambda item: natural_key(item[0])):
        shared = " shared" if resource.shared else ""
        click.echo(f"{address}\t{resource.appId}\t{resource.datasetId}{shared}")
    for entry in current.journal:
        click.echo(f"pending: {entry.op} {entry.address} in app {entry.appId} "
                   f"(dataset {entry.datasetId or 'not known yet'}, since {entry.started})", err=True)
    if current.journal:
        click.echo("Pending operations are settled by the next plan, apply or destroy.", err=True)


@state.command("show")
@click.argument("address")
@environment_options
@reports_errors
def state_show(address, **kwargs):
    """Everything the state records of ADDRESS, as JSON (values read through ${env:X} masked)."""
    workspace = open_workspace(kwargs)
    current = workspace.store.read()
    if address not in current.resources:
        raise StateError(f"{address} is not in the state{did_you_mean_address(address, current.resources)} "
                             "(see `qrvey-iac state list`)")
    recorded = current.resources[address].model_dump(mode="json")
    click.echo(json.dumps(mask_value(recorded, _manifest_secrets(workspace)), indent=2, sort_keys=True))


def _manifest_secrets(workspace) -> frozenset[str]:
    """The manifests' ${env:X} values, to mask what a state written by an older release holds
    in clear (this one conceals them). The state is shown even when the manifests do not load:
    it does not depend on them."""
    try:
        return workspace.manifest().secrets
    except InputError:
        return frozenset()


@state.command("rm")
@click.argument("address")
@environment_options
@reports_errors
def state_rm(address, **kwargs):
    """Forget ADDRESS without deleting it in Qrvey, at once.

    To do it through review instead, declare a `kind: Removed` document (README, "Moves and
    removals"): the plan shows it, and apply also takes the ownership marker off the object."""
    workspace = open_workspace(kwargs)
    with workspace.locker.lock("state rm"):
        current = _settled_state(workspace)
        if address not in current.resources:
            raise StateError(f"{address} is not in the state{did_you_mean_address(address, current.resources)} "
                             "(see `qrvey-iac state list`)")
        workspace.store.write(current.without_resource(address).bumped(), current.serial)
    click.echo(f"Removed {address} from the state; it still exists in Qrvey.")


@state.command("mv")
@click.argument("source")
@click.argument("destination")
@environment_options
@reports_errors
def state_mv(source, destination, **kwargs):
    """Rename an address in the state (after renaming metadata.name), at once.

    To do it through review instead, declare a `kind: Moved` document (README, "Moves and
    removals"): the plan shows the move, and apply also updates the ownership marker."""
    workspace = open_workspace(kwargs)
    with workspace.locker.lock("state mv"):
        current = _settled_state(workspace)
        if source not in current.resources:
            raise StateError(f"{source} is not in the state{did_you_mean_address(source, current.resources)}")
        if destination in current.resources:
            raise StateError(f"{destination} is already in the state")
        kind = KINDS[current.resources[source].kind]
        if not re.fullmatch(ADDRESS_SYNTAX, destination):
            raise StateError(f"{destination!r} is not an address ({kind.prefix}.<name>)")
        if KINDS.of_address(destination) is not kind:
            raise StateError(f"an address keeps its kind: {kind.prefix}.* stays {kind.prefix}.*")
        moved = current.with_move(source, destination)     # their recorded source follows the rename
        workspace.store.write(moved.bumped(), current.serial)
    click.echo(f"Moved {source} to {destination}.")


def _settled_state(workspace) -> State:
    current = workspace.store.read()
    if current.journal:
        raise StateError(
            f"the state has {len(current.journal)} pending operation(s) from an interrupted run; "
            "run `qrvey-iac plan` first so they are settled (an interrupted create that has not landed "
            "stays pending until `qrvey-iac apply` makes it), then edit the state"
        )
    return current


@state.command("claim")
@environment_options
@reports_errors
def state_claim(**kwargs):
    """Make the state this environment's (to move a state on purpose).

    A state remembers the environment and endpoint it was made for, and every other
    environment's commands refuse it. After renaming an environment, or when its Qrvey
    instance moved to a new address, claim the state once. Only the record of the owner
    changes; the next plan reads every recorded object at this environment's endpoint.
    """
    workspace = open_workspace(kwargs)
    store = workspace.store
    with workspace.locker.lock("state claim"):
        previous = store.claim()
    ours = store.owner
    if previous == ours:
        click.echo(f"The state already belongs to {ours.describe()}; nothing changed.")
    elif previous is None:
        click.echo(f"Recorded the state as the state of {ours.describe()} (it recorded no environment).")
    else:
        click.echo(f"Moved the state from {previous.describe()} to {ours.describe()}. The next plan reads its "
                   "objects at this endpoint; an object not found there is planned to be created again.")


@state.command("migrate")
@click.option("--to", "target_env", required=True, metavar="ENV",
              help="The environment of the config whose state backend receives the copy.")
@environment_options
@reports_errors
def state_migrate(target_env, **kwargs):
    """Copy this environment's state to the state backend of environment ENV.

    For moving a state between backends (a local file to PostgreSQL, or back): give the
    environment a second entry in qrvey-iac.yaml with the same endpoint and apps and the new
    `state:` block, then run `qrvey-iac state migrate --env OLD --to NEW`. Lineage, serial,
    resources and pending operations are kept; the copy is recorded as ENV's. Both states are
    locked while it runs. The target must hold no state yet; the copy is read back and compared
    before migrate reports success, and the source is never changed (remove it yourself once
    the config uses the new backend). Run again after a success, it says the copy is there.
    """
    from qrvey_iac.adapters.state.owned import endpoint_identity
    from qrvey_iac.migration import migrate_state

    source = open_workspace(kwargs)
    target = open_workspace({**kwargs, "env": target_env})
    ours, theirs = source.store.owner, target.store.owner
    if ours.environment == theirs.environment:
        raise StateError(f"--to {target_env} is the environment being migrated: name another environment "
                         "of the config, one whose `state:` block names the new backend")
    if ours.endpoint != theirs.endpoint:
        raise StateError(f"environment {ours.environment!r} (endpoint {ours.endpoint}) and {theirs.environment!r} "
                         f"(endpoint {theirs.endpoint}) are different Qrvey endpoints: a state names the objects "
                         "of one instance, so it moves only between environments of the same endpoint")
    if source.store.where == target.store.where or source.state_location == target.state_location:
        raise StateError(f"{source.store.where} is also the state of environment {target_env!r}: "
                         "there is nothing to copy (give it another `state:` block first)")
    with source.locker.lock("state migrate"), target.locker.lock("state migrate"):
        recorded = source.store.inner.read().owner if source.store.inner.exists() else None
        if recorded is not None and not any(
                recorded.environment == owner.environment and endpoint_identity(recorded.endpoint) == owner.endpoint
                for owner in (ours, theirs)):
            raise StateError(f"{source.store.where} belongs to {recorded.describe()}, neither to "
                             f"{ours.describe()} nor to {theirs.describe()}: migrate moves a state between two "
                             "backends of one environment only. Nothing was changed.")
        result = migrate_state(source.store.inner, target.store.inner, theirs,
                               (source.store.where, target.store.where),
                               reread=lambda: target.reopened_store().inner.read())
    copied = result.state
    if result.already_there:
        click.echo(f"{target.store.where} already holds this state (lineage {copied.lineage}, serial "
                   f"{copied.serial}); nothing was changed.")
        return
    click.echo(f"Copied {len(copied.resources)} resource(s) and {len(copied.journal)} pending operation(s) from "
               f"{source.store.where} to {target.store.where} (lineage {copied.lineage}, serial {copied.serial}), "
               "and read them back the same.")
    click.echo(f"{source.store.where} is unchanged: point environment {ours.environment!r} at the new backend "
               f"(or use {target_env!r}), then remove the old state when you no longer need it.")


@state.command("unlock")
@click.argument("lock_id")
@click.option("--force", is_flag=True,
              help="Break the lock even when its holder is alive on this host (it keeps running).")
@environment_options
@reports_errors
def state_unlock(lock_id, force, **kwargs):
    """Break the state lock LOCK_ID (shown by the command that found it held).

    For a holder on another machine that is gone. A holder alive on this host is refused
    unless --force: stop it instead, and its lock goes with it.
    """
    holder = open_workspace(kwargs).locker.unlock(lock_id, force=force)
    click.echo(f"Unlocked: the lock of {holder.get('command')} (pid {holder.get('pid')} "
               f"on {holder.get('host')}) is broken.")


@click.command("export")
@click.option("--app", "aliases", multiple=True, metavar="ALIAS", help="An app alias of the environment (repeatable).")
@click.option("--all-apps", is_flag=True, help="Every app alias of the environment.")
@click.option("--out", metavar="DIR", type=click.Path(file_okay=True, dir_okay=True),
              help="Folder for the manifests, one <alias>.yaml per app (default: the config's manifests folder).")
@click.option("--force", is_flag=True, help="Overwrite manifest files that exist already.")
@click.option("--parallelism", type=click.IntRange(1, 256), metavar="N", help="API calls in flight (default 10).")
@environment_options
@reports_errors
def export(aliases, all_apps, out, force, parallelism, **kwargs):
    """Write manifests for every dataset and view of apps made outside qrvey-iac, and take
    them under management.

    Reads every object of the apps (the whole listing, then each object), writes one
    manifest file per app with only the fields qrvey-iac manages (logical names from the
    display names; views point at their source by address when it is exported too, by ids
    otherwise), and records each object in the state as apply records what it creates, so
    the next plan shows no changes. Connection ids become ${var.NAME} variables: the ones
    the environment lacks are printed, to add to its variables in qrvey-iac.yaml.

    Each exported object that lacks qrvey-iac's ownership marker (customAttributes
    qrveyIacAddress) gets it, with one update call each (said as "marked N objects as
    managed by environment E"): the marker is what lets a lost state be found again.
    Objects tracked already are not recorded again.
    """
    from qrvey_iac.adapters.manifest_writer import ManifestFolder
    from qrvey_iac.exporting import export_apps

    workspace = open_workspace(kwargs)
    environment = workspace.environment
    apps = _chosen_apps(environment, aliases, all_apps)
    folder = Path(out) if out else environment.manifests_dir
    sink = ManifestFolder(folder, force, out or str(folder))
    sink.check(list(apps))

    def progress(message: str) -> None:
        click.echo(message, err=True)

    report = asyncio.run(export_apps(workspace, apps, environment.variables, sink, progress, parallelism))
    _show_export(report, environment.name, environment.config_file)


def _chosen_apps(environment, aliases, all_apps):
    known = environment.apps
    if all_apps and aliases:
        raise ConfigError([Problem("--app", None, "", "give --app ALIAS (repeatable) or --all-apps, not both")])
    if not all_apps and not aliases:
        raise ConfigError([Problem("--app", None, "", "name the apps to export: --app ALIAS (repeatable) or "
                                   f"--all-apps (the apps of environment {environment.name}: {', '.join(known)})")])
    unknown = [alias for alias in aliases if alias not in known]
    if unknown:
        raise ConfigError([Problem(environment.config_file, None, f"environments.{environment.name}.apps",
                                   f"unknown app alias {alias!r}{did_you_mean(alias, known)} "
                                   f"(known: {', '.join(known)})") for alias in unknown])
    chosen = known if all_apps else dict.fromkeys(aliases)
    return {alias: known[alias] for alias in chosen}


def _show_export(report, environment: str, config_file: str) -> None:
    export = report.export
    numbers = [(sum(o.kind == kind.name for o in export.objects), kind.plural) for kind in KINDS]
    counts = ", ".join(f"{number} {plural}" for number, plural in numbers if number) or "no objects"
    files = ", ".join(f"{path} ({len(export.documents[path.stem])})" for path in report.files)
    click.echo(f"Exported {counts} of {len(export.documents)} app(s): {files}.")
    recorded, tracked = export.recorded, [o for o in export.objects if o.tracked]
    click.echo(f"Recorded {len(recorded)} objects in the state of environment {environment}.")
    if tracked:
        shown = ", ".join(o.address for o in tracked[:20]) + (", ..." if len(tracked) > 20 else "")
        click.echo(f"Already tracked, not recorded again: {len(tracked)} ({shown}).")
    click.echo(f"Marked {len(report.marked)} objects as managed by environment {environment} "
               "(one update call each adds the ownership marker).")
    for line in report.skipped:
        click.echo(f"note: left out {line}", err=True)
    if export.variables:
        click.echo(f"\nThe manifests use variables environment {environment} does not declare yet. Add them to "
                   f"environments.{environment}.variables in {config_file} (other environments need their own "
                   "values):")
        for name, value in export.variables.items():
            click.echo(f"      {name}: {json.dumps(value)}")


@click.group()
def emulator() -> None:
    """The Qrvey API emulator: a fake Qrvey for tests, demos and benchmarks."""


@emulator.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (loopback by default).")
@click.option("--port", default=8787, show_default=True, type=click.IntRange(0, 65535))
@click.option("--api-key", default="local", show_default=True, help="The x-api-key every call must send.")
@click.option("--data", type=click.Path(dir_okay=False),
              help="JSON file to load the world from; saved while it changes (see --save-interval) and on exit.")
@click.option("--save-interval", default=2.0, show_default=True, type=click.FloatRange(0, min_open=True),
              metavar="SECONDS", help="With --data: how often, at most, the world is saved.")
@click.option("--latency-ms", default=0.0, show_default=True, type=click.FloatRange(0), help="Added to every call.")
@click.option("--faults", metavar="SPEC", help="Fault injection rules (see docs/emulator.md).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seeds ids and fault dice.")
@click.option("--terminal-status", type=click.Choice(["LOADED", "ACTIVE"]), default="LOADED", show_default=True)
@click.option("--load-seconds", default=0.0, show_default=True, type=click.FloatRange(0), metavar="SECONDS",
              help="How long a dataset load stays LOADING at least (and 2 Get Dataset polls).")
@click.option("--on-source-delete", type=click.Choice(["orphan", "refuse", "cascade"]), default="orphan",
              show_default=True, help="What deleting a view's source does to the view.")
@click.option("--route", "routes", multiple=True, metavar="NAME=METHOD /PATH",
              help="Serve an unconfirmed operation elsewhere, as another instance might (repeatable), e.g. "
                   "'dataset.update=POST /qollect/dataset/{datasetId}/update' (see docs/emulator.md).")
@click.option("--unknown-apps", type=click.Choice(["create", "refuse"]), default="create", show_default=True,
              help="An app never created with POST /user/{u}/app: made on first use, or answered 404.")
@click.option("--list-shape", type=click.Choice(["cursor", "items-token", "total", "count", "unpaged"]),
              default="cursor", show_default=True,
              help="How POST .../all listings answer (see docs/emulator.md, Listings).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@reports_errors
def serve(host, port, api_key, data, save_interval, latency_ms, faults, seed, terminal_status, load_seconds,
          on_source_delete, routes, unknown_apps, list_shape, debug):
    """Serve the emulator over HTTP until interrupted (Ctrl-C)."""
    from qrvey_iac.emulator import EmulatorConfig, parse_faults
    from qrvey_iac.emulator.serve import serve as run_server

    try:
        fault_set = parse_faults(faults) if faults else None
    except ValueError as exc:
        raise ConfigError([Problem("--faults", None, "", str(exc))]) from None
    config = EmulatorConfig(api_key=api_key, data_file=Path(data) if data else None, save_interval=save_interval,
                            seed=seed, latency_ms=latency_ms, faults=fault_set, terminal_status=terminal_status,
                            on_source_delete=on_source_delete, routes=_route_answers(routes),
                            unknown_apps=unknown_apps, list_shape=list_shape, load_seconds=load_seconds)
    click.echo(f"Qrvey emulator listening on http://{host}:{port} (Ctrl-C stops it)", err=True)
    run_server(config, host=host, port=port, on_exit=_say_faults if fault_set is not None else None)


def _route_answers(options: tuple[str, ...]) -> dict[str, str]:
    """``--route NAME=METHOD /PATH`` options as EmulatorConfig.routes, checked before serving."""
    from qrvey_iac.emulator.routes import route_table

    answers: dict[str, str] = {}
    problems = []
    for option in options:
        name, sep, value = option.partition("=")
        if not sep or not name.strip():
            problems.append(Problem("--route", None, "", f"expected NAME=METHOD /PATH, got {option!r}"))
            continue
        answers[name.strip()] = value.strip()
    try:
        route_table(answers)
    except ValueError as exc:
        problems.append(Problem("--route", None, "", str(exc)))
    if problems:
        raise ConfigError(problems)
    return answers


def _say_faults(emulator) -> None:
    counts = ", ".join(f"{kind}={count}" for kind, count in sorted(emulator.fault_counts.items()))
    click.echo(f"Faults injected: {counts or 'none'}", err=True)
