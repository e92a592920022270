"""Turn Qrvey HTTP responses into Python values or typed errors, with the key redacted.

Qrvey's error body (qrvey-api.md §5) is
``{"status": "error", "date": ..., "errors": [{"message": ...}, ...]}``; the
messages are joined. Anything else (HTML from a proxy, plain text) becomes a
truncated excerpt. A server may echo request headers back, so every text that
leaves this module passes through :class:`Redactor` first.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from typing import Any

import httpx
import orjson

from qrvey_iac.core.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    UnusableAnswerError,
)

# parse_json's look for a run of 19 digits (a number orjson may read as a float where json reads
# an exact integer): every digit becomes b"0", every other byte b"-", then one substring search.
# Both steps run in C: 15 us for a 9 KB answer, where the regex [0-9]{19} took 200.
_DIGITS_AS_ZERO = bytes(ord("0") if ord("0") <= byte <= ord("9") else ord("-") for byte in range(256))
_LONG_RUN = b"0" * 19
REDACTED = "***"
EXCERPT_LIMIT = 300
MESSAGE_LIMIT = 2000
MIN_SECRET = 4          # as core.secrets.MIN_SUBSTRING: a shorter value would hide ordinary words

_ERRORS_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    429: RateLimitedError,
}


class Redactor:
    """Hides the API key, and every value the manifests read through ``${env:X}``, in any
    text. ``others`` is read at each call: a set the workspace fills once the manifests are
    read (the client exists before that). Values shorter than MIN_SECRET are hidden only by
    the layers that know whole values (plans are masked value by value). Its repr never
    shows a secret."""

    def __init__(self, secret: str, others: Collection[str] = ()) -> None:
        self._secret = secret
        self._others = others

    def __call__(self, text: str) -> str:
        secrets = {s for s in self._others if len(s) >= MIN_SECRET}
        if self._secret:
            secrets.add(self._secret)
        for secret in sorted(secrets, key=len, reverse=True):     # a longer one may contain a shorter
            text = text.replace(secret, REDACTED)
        return text

    def __repr__(self) -> str:
        return f"Redactor({REDACTED!r})"


class RedactingFilter(logging.Filter):
    """A logging filter that redacts a record's whole message (for a library's logger whose
    lines we do not write: httpx logs every request URL at INFO)."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


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
        payload = parse_json(response.content)
    except (ValueError, UnicodeDecodeError, RecursionError):
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


def parse_json(content: bytes) -> Any:
    """``json.loads(content)``: the same value for every text, the same errors, in about half
    the time for an ordinary answer (orjson; docs/performance.md, "Issue 11, planning's
    per-object work and JSON").

    orjson refuses what json accepts beyond strict JSON (NaN, Infinity, lone surrogates, a
    byte order mark, UTF-16, numbers beyond a double's range): those texts go to json, which
    reads them or raises as before. And where orjson would read an integer beyond 64 bits as
    a float, json reads it exactly: a text holding a run of 19 digits goes to json as well."""
    if _LONG_RUN not in content.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
    return json.loads(content)


def excerpt(text: str, limit: int = EXCERPT_LIMIT) -> str:
    """Whitespace-collapsed text, cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def decode_success(response: httpx.Response, method: str, path: str, redact: Redactor, *,
                   need_object: bool = False) -> Any:
    """The JSON of a 2xx response; an empty body is None. Broken JSON, a body in Qrvey's error
    shape (a server or proxy that answers 200 for a failure) and, with ``need_object``, any
    answer but a JSON object (empty, ``null``, an array, a scalar) are UnusableAnswerError."""
    status, shown = response.status_code, redact(path)
    if not response.content.strip():
        if need_object:
            raise UnusableAnswerError(status, "expected a JSON object, the answer is empty", method, shown)
        return None
    try:
        payload = parse_json(response.content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        text = excerpt(redact(response.text))
        raise UnusableAnswerError(status, f"the answer is not valid JSON: {text!r}", method, shown) from None
    if is_error_shaped(payload):
        detail = "; ".join(_qrvey_messages(payload)) or json.dumps(payload, sort_keys=True)
        message = f"the answer is an error body despite the success status: {excerpt(redact(detail))}"
        raise UnusableAnswerError(status, message, method, shown)
    if need_object and not isinstance(payload, dict):
        message = f"expected a JSON object, the answer is {_json_type(payload)}"
        raise UnusableAnswerError(status, message, method, shown)
    return payload


def is_error_shaped(payload: Any) -> bool:
    """Qrvey's error body: ``status: "error"`` or a non-empty ``errors`` list (no Qrvey object
    has either: dataset statuses are upper case)."""
    if not isinstance(payload, dict):
        return False
    errors = payload.get("errors")
    return payload.get("status") == "error" or (isinstance(errors, list) and bool(errors))


def _json_type(payload: Any) -> str:
    if payload is None:
        return "null"
    if isinstance(payload, list):
        return "an array"
    if isinstance(payload, str):
        return "a string"
    if isinstance(payload, bool):
        return "a boolean"
    return "a number"
