"""The example GitHub workflow's qrvey-iac commands, run in order against the emulator."""

import re
import shlex
from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / "examples" / "github" / "qrvey-iac.yml"


def qrvey_commands(job: dict) -> list[list[str]]:
    """Every qrvey-iac invocation in a job's run steps, as argv, env expanded for local."""
    commands = []
    for step in job["steps"]:
        for line in step.get("run", "").splitlines():
            line = line.strip()
            if line.startswith("qrvey-iac "):
                line = line.split(" > ")[0].replace('"$QRVEY_IAC_ENV"', "local")
                commands.append(shlex.split(line)[1:])
    return commands


def test_workflow_commands_work_against_the_emulator(project):
    workflow = yaml.safe_load(WORKFLOW.read_text())
    jobs = workflow["jobs"]
    plan_job, apply_job, drift_job = (qrvey_commands(jobs[name]) for name in ("plan", "apply", "drift"))
    assert [c[0] for c in plan_job] == ["validate", "plan"]
    assert [c[0] for c in apply_job] == ["apply"] and "plan.json" in apply_job[0]
    assert [c[0] for c in drift_job] == ["drift"]

    validate, plan = plan_job
    assert project.run(*validate).exit_code == 0
    planned = project.run(*plan)
    assert planned.exit_code == 2, planned.output              # changes present: the PR has work
    assert planned.stdout.startswith("<!-- qrvey-iac plan")      # the marker the comment step looks for
    assert (project.root / "plan.json").exists()

    applied = project.run(*apply_job[0])
    assert applied.exit_code == 0, applied.output
    assert len(project.state()["resources"]) == 10

    drift = project.run(*drift_job[0])
    assert drift.exit_code == 0, drift.output
    assert re.search(r"no drift|no changes", drift.stdout, re.IGNORECASE)


def test_comment_step_looks_for_the_marker_the_renderer_writes():
    from qrvey_iac.core.render_markdown import COMMENT_MARKER

    assert "marker='%s'" % COMMENT_MARKER in WORKFLOW.read_text()
