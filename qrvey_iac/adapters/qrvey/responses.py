"""Turn Qrvey HTTP responses into Python values or typed errors, with the key redacted.

Qrvey's error body (qrvey-api.md §5) is
``{"status": "error", "date": ..., "errors": [{"message": ...}, ...]}``; the
messages are joined. Anything else (HTML from a proxy, plain text) becomes a
truncated excerpt. A server may echo request headers back, so every text that
leaves this module passes through :class:`Redactor` first.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from qrvey_iac.core.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    NotFoundError,
    RateLimitedError,
    ServerError,
)

REDACTED = "***"
EXCERPT_LIMIT = 300
MESSAGE_LIMIT = 2000

_ERRORS_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    429: RateLimitedError,
}


class Redactor:
    """Hides one secret in any text. Its repr never shows the secret."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def __call__(self, text: str) -> str:
        if not self._secret:
            return text
        return text.replace(self._secret, REDACTED)

    def __repr__(self) -> str:
        return f"Redactor({REDACTED!r})"


def error_class(status: int) -> type[ApiError]:
    if status in _ERRORS_BY_STATUS:
        return _ERRORS_BY_STATUS[status]
    if 500 <= status <= 599:
        return ServerError
    return ApiError


def error_from_response(response: httpx.Response, method: str, path: str, redact: Redactor) -> ApiError:
    """The typed error for a non-2xx response."""
    message = error_message(response, redact)
    cls = error_class(response.status_code)
    return cls(response.status_code, message, method, redact(path))


def error_message(response: httpx.Response, redact: Redactor) -> str:
    """The joined ``errors[].message`` of a Qrvey error body, or an excerpt of the text.

    The secret is removed before any cut, so no prefix of it can survive.
    """
    try:
        payload = response.json()
    except (ValueError, UnicodeDecodeError):
        return excerpt(redact(response.text)) or response.reason_phrase or "no response body"
    messages = _qrvey_messages(payload)
    if messages:
        return excerpt(redact("; ".join(messages)), MESSAGE_LIMIT)
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        return excerpt(redact(payload["message"]), MESSAGE_LIMIT)
    return excerpt(redact(json.dumps(payload, sort_keys=True)))


def _qrvey_messages(payload: Any) -> list[str]:
    if not isinstance(payload, dict) or not isinstance(payload.get("errors"), list):
        return []
    messages = []
    for item in payload["errors"]:
        if isinstance(item, dict) and item.get("message") is not None:
            messages.append(str(item["message"]))
        elif isinstance(item, str):
            messages.append(item)
    return messages


def excerpt(text: str, limit: int = EXCERPT_LIMIT) -> str:
    """Whitespace-collapsed text, cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def decode_success(response: httpx.Response, method: str, path: str, redact: Redactor) -> Any:
    """The JSON of a 2xx response; an empty body is None; broken JSON is an ApiError."""
    if not response.content.strip():
        return None
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        text = excerpt(redact(response.text))
        message = f"the response is not valid JSON: {text!r}"
        raise ApiError(response.status_code, message, method, redact(path)) from None
