"""``qrvey-iac doctor``: the command around qrvey_iac/doctor.py (asks, runs, prints the report)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from qrvey_iac.cli_support import KNOWN_SECRETS, environment_options, open_workspace, reports_errors
from qrvey_iac.core.errors import ConfigError, Problem, QrveyIacError
from qrvey_iac.core.keys import AppRef
from qrvey_iac.core.secrets import mask_text
from qrvey_iac.doctor import Doctor, Report
from qrvey_iac.wiring import Workspace


@click.command()
@environment_options
@click.option("--scratch-app", required=True, metavar="ALIAS",
              help="The app (an alias of the environment) doctor may create and delete objects in.")
@click.option("--yes", is_flag=True, help="Run without asking for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--connection-id", metavar="ID",
              help="A database connection of the scratch app for the scratch dataset (a real one lets its load "
                   "finish; default: a made-up id).")
@click.option("--connector-type", default="MSSQL_LIVE", show_default=True, metavar="TYPE",
              help="The connectorType of --connection-id.")
@click.option("--load-timeout", default=120.0, show_default=True, type=click.FloatRange(0, min_open=True),
              metavar="SECONDS", help="How long to wait for the scratch dataset's load.")
@click.option("--poll-interval", default=2.0, show_default=True, type=click.FloatRange(0, min_open=True),
              metavar="SECONDS", help="Between two reads of a loading dataset.")
@reports_errors
def doctor(**kwargs):
    """Find out which method and path each unconfirmed API route takes on this instance.

    In the scratch app: create a dataset with a client-chosen id, read it back, update it,
    apply the changes, load it, share it, create a view of it, list the app, unshare it, and
    delete all it made (also when a step fails). Prints the `routes:` block for qrvey-iac.yaml
    and the answers to qrvey-api.md's open questions. Exit 1 when a step failed, a route was
    not found or something could not be deleted (the report names it, with its id).
    """
    workspace = open_workspace(kwargs)
    app = scratch_app(workspace, kwargs["scratch_app"])
    KNOWN_SECRETS.update(workspace.secrets())
    if not kwargs["yes"]:
        confirm_writes(workspace, kwargs["scratch_app"], app)
    report = asyncio.run(run_doctor(workspace, app, kwargs))
    output = report_json(report, workspace, kwargs["scratch_app"]) if kwargs["as_json"] else \
        report_text(report, workspace, kwargs["scratch_app"])
    click.echo(mask_text(output, frozenset(KNOWN_SECRETS)), nl=False)
    if not report.ok:
        raise QrveyIacError(failure_summary(report))


def scratch_app(workspace: Workspace, alias: str) -> AppRef:
    apps = workspace.environment.apps
    if alias not in apps:
        known = ", ".join(sorted(apps))
        raise ConfigError([Problem(workspace.environment.config_file, None, "--scratch-app",
                                   f"app {alias!r} is not an app of environment {workspace.environment.name} "
                                   f"(its apps: {known}); add it under apps: or name one of those")])
    return apps[alias]


def confirm_writes(workspace: Workspace, alias: str, app: AppRef) -> None:
    env = workspace.environment
    click.echo(f"doctor creates, changes, loads, shares and deletes a scratch dataset and a view in app {alias} "
               f"(userId {app.user_id}, appId {app.app_id}) of environment {env.name} ({env.endpoint}).", err=True)
    try:
        agreed = click.confirm("Go ahead?", default=False, err=True)
    except click.Abort:
        agreed = False
    if not agreed:
        raise QrveyIacError("doctor cancelled: nothing was sent (pass --yes to skip the question)")


async def run_doctor(workspace: Workspace, app: AppRef, kwargs: dict[str, Any]) -> Report:
    async with workspace.qrvey(parallelism=1) as gateway:
        doctor = Doctor(gateway.client, app, say, configured=workspace.environment.routes,
                        connection_id=kwargs["connection_id"], connector_type=kwargs["connector_type"],
                        load_timeout=kwargs["load_timeout"],
                        poll_interval=kwargs["poll_interval"])
        return await doctor.run()


def say(line: str) -> None:
    click.echo(f"doctor: {mask_text(line, frozenset(KNOWN_SECRETS))}", err=True)


def report_text(report: Report, workspace: Workspace, alias: str) -> str:
    env = workspace.environment
    lines = [f"Doctor report for environment {env.name} ({env.endpoint}), scratch app {alias}:", "",
             "Unconfirmed routes (qrvey_iac/adapters/qrvey/paths.py):"]
    for name, finding in sorted(report.routes.items()):
        refused = "; ".join(f"{route} -> {answer}" for route, answer in finding.refused)
        accepted = finding.accepted or "none accepted"
        note = "the default" if finding.is_default else "not the default" if finding.accepted else ""
        detail = ", ".join(part for part in (note, f"refused: {refused}" if refused else "") if part)
        lines.append(f"  {name:<22} {accepted}" + (f"  ({detail})" if detail else ""))
    lines += [f"  {name:<22} not checked: {why}" for name, why in report.unchecked().items()]
    lines += ["", *routes_block_text(report, workspace), "", "Answers to qrvey-api.md's open questions:"]
    lines += [f"  {question}: {answer}" for question, answer in report.answers.items()] or ["  (none reached)"]
    lines += ["", cleanup_text(report, alias)]
    return "\n".join(lines) + "\n"


def routes_block_text(report: Report, workspace: Workspace) -> list[str]:
    env = workspace.environment
    block = report.routes_block(env.routes)
    if not block:
        return [f"No routes: block needed for environment {env.name}: every route doctor checked answers at its "
                "default" + (" (the ones not found are listed above)." if not report.ok else ".")]
    lines = [f"Paste into {env.config_file}, under environments.{env.name} (in place of any routes: there):", "",
             "routes:"]
    lines += [f"  {name}: {json.dumps(route)}" for name, route in block.items()]
    return lines


def cleanup_text(report: Report, alias: str) -> str:
    if not report.left_over:
        return f"Cleanup: nothing doctor made is left in app {alias}."
    return "Cleanup could not delete (delete these by hand):\n" + "\n".join(f"  {item}" for item in report.left_over)


def report_json(report: Report, workspace: Workspace, alias: str) -> str:
    env = workspace.environment
    findings = {name: {"accepted": finding.accepted, "isDefault": finding.is_default,
                       "refused": [{"route": route, "answer": answer} for route, answer in finding.refused]}
                for name, finding in sorted(report.routes.items())}
    document = {"environment": env.name, "scratchApp": alias, "ok": report.ok,
                "routes": report.routes_block(env.routes), "findings": findings, "unchecked": report.unchecked(),
                "answers": report.answers, "failure": report.failure, "leftOver": report.left_over}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def failure_summary(report: Report) -> str:
    problems = []
    if report.failure:
        problems.append(f"a step failed ({report.failure})")
    missing = [name for name, finding in sorted(report.routes.items()) if not finding.accepted]
    if missing:
        problems.append(f"no route was accepted for {', '.join(missing)}")
    if report.left_over:
        problems.append(f"{len(report.left_over)} object(s) could not be deleted (listed above)")
    return "doctor: " + "; ".join(problems)
