"""The JSON Schema of the manifest format, made from the pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from qrvey_iac.core.manifest import document_union

SCHEMA_ID = "https://qrvey-iac.dev/schema/manifest-v1.json"


def manifest_schema() -> dict[str, Any]:
    schema = TypeAdapter(document_union()).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "qrvey-iac manifest (apiVersion qrvey-iac/v1)"
    return schema
