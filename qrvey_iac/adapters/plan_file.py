"""Saved plan files: strict loading, atomic writing, no secrets."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from qrvey_iac.adapters.files import write_atomic
from qrvey_iac.core.errors import PlanError
from qrvey_iac.core.plan import PLAN_FORMAT_VERSION, Plan

# What every saved plan holds (the other fields have defaults, so "{}" would load as a plan).
REQUIRED_KEYS = ("format_version", "environment", "lineage", "serial", "actions")


def save_plan(path: Path, text: str) -> None:
    write_atomic(path, text)


def load_plan(path: Path) -> Plan:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PlanError(f"cannot read plan file {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:   # RecursionError: nested too deeply
        raise PlanError(f"plan file {path} is not valid JSON (truncated or not a plan?): {exc}") from None
    if not isinstance(data, dict):
        raise PlanError(f"plan file {path} is not a qrvey-iac plan (expected a JSON object)")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise PlanError(f"plan file {path} is not a qrvey-iac plan (it has no {', '.join(missing)})")
    version = data.get("format_version")
    if isinstance(version, int) and version > PLAN_FORMAT_VERSION:
        raise PlanError(f"plan file {path} has format_version {version}; this qrvey-iac reads "
                        f"{PLAN_FORMAT_VERSION}: upgrade qrvey-iac")
    if isinstance(version, int) and not isinstance(version, bool) and version < PLAN_FORMAT_VERSION:
        raise PlanError(f"plan file {path} has format_version {version}, written by an older qrvey-iac; "
                        "run qrvey-iac plan --out again and review the new plan")
    data.pop("summary", None)
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise PlanError(f"plan file {path} is not a valid qrvey-iac plan at {where}: {first['msg']}") from None
