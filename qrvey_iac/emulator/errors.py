"""Qrvey's error body, and the exception handlers raise to produce it."""

from __future__ import annotations

import time
from typing import Any


class ApiError(Exception):
    """An HTTP error answered in Qrvey's error shape."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_body(message: str) -> dict[str, Any]:
    """The body Qrvey sends with every error (qrvey-api.md §5)."""
    return {
        "status": "error",
        "date": int(time.time()),
        "errors": [
            {
                "message": message,
                "messageDetails": True,
                "stack": f"Error: {message}\n    at handler (/var/task/qrvey-emulator.js:1:1)",
            }
        ],
    }


def invalid(message: str) -> ApiError:
    """400 for a request body that breaks a rule; the message names the field."""
    return ApiError(400, f"ValidationError: {message}")


def missing(field: str) -> ApiError:
    return invalid(f"{field} is a required property")


def wrong_type(field: str, expected: str) -> ApiError:
    return invalid(f"{field} must be {expected}")


def not_found(kind: str, object_id: str) -> ApiError:
    return ApiError(404, f"{kind} {object_id} not found")


def refused(message: str) -> ApiError:
    """400 for a request that is well formed but not allowed in the current state."""
    return ApiError(400, message)
