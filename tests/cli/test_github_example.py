"""The example GitHub workflow's qrvey-iac commands, run in order against the emulator."""

import json
import os
import re
import shlex
import subprocess
import sys
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


def test_workflow_commands_work_against_the_emulator(any_backend_project):
    """The jobs' commands in order, with the state in a local file and in PostgreSQL (the
    backend the workflow is written for)."""
    project = any_backend_project
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
    assert len(project.state()["resources"]) == 11

    drift = project.run(*drift_job[0])
    assert drift.exit_code == 0, drift.output
    assert re.search(r"no drift|no changes", drift.stdout, re.IGNORECASE)


def step(job: str, name_starts: str) -> dict:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    found = [s for s in workflow["jobs"][job]["steps"] if s.get("name", "").startswith(name_starts)]
    assert len(found) == 1, f"{job}: no single step named {name_starts!r}"
    return found[0]


def fake_tools(tmp_path: Path, gh_data: object, drift_exit: int = 0) -> dict[str, str]:
    """A PATH with a fake ``gh`` (records its arguments; a read answers ``gh_data`` through
    the real jq, as gh's --jq does) and a fake ``qrvey-iac`` (writes markdown, exits
    ``drift_exit``). Returns the environment to run a step's script with."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "gh-data.json").write_text(json.dumps(gh_data))
    gh = bin_dir / "gh"
    gh.write_text(f"""#!{sys.executable}
import json, subprocess, sys
args = sys.argv[1:]
with open({str(tmp_path / "gh-calls.jsonl")!r}, "a") as log:
    log.write(json.dumps(args) + "\\n")
reading = (args[:1] == ["api"] and "-X" not in args) or args[:2] == ["issue", "list"]
if reading and "--jq" in args:
    data = open({str(tmp_path / "gh-data.json")!r}).read()
    print(subprocess.run(["jq", "-r", args[args.index("--jq") + 1]], input=data, text=True,
                         capture_output=True, check=True).stdout, end="")
""")
    tool = bin_dir / "qrvey-iac"
    tool.write_text(f"#!/bin/sh\necho '<!-- qrvey-iac plan: environment=prod -->'\nexit {drift_exit}\n")
    for script in (gh, tool):
        script.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "QRVEY_IAC_ENV": "prod"}


def run_step(tmp_path: Path, script: str, env: dict[str, str]) -> list[list[str]]:
    """The step's script as GitHub runs it (bash -eo pipefail), its expressions filled in;
    returns the gh calls it made."""
    script = (script.replace("${{ github.repository }}", "acme/analytics")
              .replace("${{ github.event.number }}", "7"))
    assert "${{" not in script, script
    done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    log = tmp_path / "gh-calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def writes(calls: list[list[str]]) -> list[list[str]]:
    return [c for c in calls if not ((c[:1] == ["api"] and "-X" not in c) or c[:2] == ["issue", "list"])]


def test_the_marker_the_comment_step_looks_for_is_the_first_line_the_renderer_writes(project):
    script = step("plan", "Post or update")["run"]
    marker_line = next(line.strip() for line in script.splitlines() if line.strip().startswith("marker="))
    marker = subprocess.run(["bash", "-c", f"{marker_line}; printf %s \"$marker\""], env={"QRVEY_IAC_ENV": "local"},
                            capture_output=True, text=True, check=True).stdout
    planned = project.run("plan", "--env", "local", "--format", "markdown")
    assert planned.stdout.splitlines()[0] == marker == "<!-- qrvey-iac plan: environment=local -->"


def test_the_plan_comment_of_this_environment_is_updated_and_another_environments_left_alone(tmp_path):
    comments = [{"id": 11, "body": "<!-- qrvey-iac plan: environment=staging -->\n### plan"},
                {"id": 12, "body": "looks good"},
                {"id": 13, "body": "<!-- qrvey-iac plan: environment=prod -->\n### plan"}]
    calls = run_step(tmp_path, step("plan", "Post or update")["run"], fake_tools(tmp_path, comments))
    assert writes(calls) == [["api", "-X", "PATCH", "repos/acme/analytics/issues/comments/13", "-F", "body=@plan.md"]]


def test_the_first_plan_comment_of_an_environment_is_posted(tmp_path):
    comments = [{"id": 11, "body": "<!-- qrvey-iac plan: environment=staging -->\n### plan"}]
    calls = run_step(tmp_path, step("plan", "Post or update")["run"], fake_tools(tmp_path, comments))
    assert writes(calls) == [["api", "-X", "POST", "repos/acme/analytics/issues/7/comments", "-F", "body=@plan.md"]]


DRIFT_ISSUES = [{"number": 4, "title": "qrvey-iac: drift in staging"}, {"number": 9, "title": "qrvey-iac: drift in prod"}]


def test_drift_updates_the_open_issue_of_its_environment_instead_of_opening_another(tmp_path):
    calls = writes(run_step(tmp_path, step("drift", "Drift")["run"], fake_tools(tmp_path, DRIFT_ISSUES, 2)))
    assert ["issue", "edit", "9", "--body-file", "drift.md"] in calls
    assert not [c for c in calls if c[:2] == ["issue", "create"]] and all("4" not in c for c in calls)


def test_drift_opens_an_issue_when_none_is_open(tmp_path):
    calls = writes(run_step(tmp_path, step("drift", "Drift")["run"], fake_tools(tmp_path, DRIFT_ISSUES[:1], 2)))
    assert calls == [["issue", "create", "--title", "qrvey-iac: drift in prod", "--body-file", "drift.md"]]


def test_no_drift_closes_the_open_issue_of_its_environment(tmp_path):
    calls = writes(run_step(tmp_path, step("drift", "Drift")["run"], fake_tools(tmp_path, DRIFT_ISSUES, 0)))
    assert len(calls) == 1 and calls[0][:3] == ["issue", "close", "9"]


def test_no_drift_and_no_open_issue_writes_nothing(tmp_path):
    assert writes(run_step(tmp_path, step("drift", "Drift")["run"], fake_tools(tmp_path, DRIFT_ISSUES[:1], 0))) == []


def test_a_failing_drift_command_fails_the_job_and_touches_no_issue(tmp_path):
    env = fake_tools(tmp_path, DRIFT_ISSUES, 1)
    done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step("drift", "Drift")["run"]],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert not (tmp_path / "gh-calls.jsonl").exists()


def readme_install() -> str:
    """The install commands of the README's quick start (between the venv and the first run)."""
    readme = (WORKFLOW.parents[2] / "README.md").read_text()
    quick = next(line for line in readme.splitlines() if "requirements/run.lock" in line and "pip install" in line)
    commands = [c.strip() for c in quick.split("&&")]
    return " && ".join(c for c in commands if "pip install" in c)


def test_every_job_installs_qrvey_iac_as_the_readme_does():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    expected = readme_install()
    assert expected == "python3 -m pip install -r requirements/run.lock && python3 -m pip install --no-deps ."
    for name, job in workflow["jobs"].items():
        installs = [s["run"].strip() for s in job["steps"] if "pip install" in s.get("run", "")]
        assert installs == [expected], name


def test_the_first_lines_say_where_the_state_lives_and_what_the_environment_needs():
    head = "\n".join(WORKFLOW.read_text().splitlines()[:20])
    assert "THE STATE LIVES IN POSTGRESQL" in head
    assert "state: {backend: postgres, dsnEnv: QRVEY_IAC_STATE_DSN, workspace: prod}" in head
    assert "QRVEY_IAC_STATE_DSN" in head and "QRVEY_API_KEY" in head


def test_every_job_gets_the_state_dsn_from_a_secret_and_no_job_commits_state():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow["env"]["QRVEY_IAC_STATE_DSN"] == "${{ secrets.QRVEY_IAC_STATE_DSN }}"
    for name, job in workflow["jobs"].items():
        assert job["permissions"]["contents"] == "read", name
        scripts = " ".join(s.get("run", "") for s in job["steps"])
        assert "git push" not in scripts and "git commit" not in scripts, name


def test_the_apply_job_waits_for_another_apply_instead_of_failing():
    (apply_command,) = qrvey_commands(yaml.safe_load(WORKFLOW.read_text())["jobs"]["apply"])
    assert apply_command[apply_command.index("--lock-timeout") + 1] == "10m"
