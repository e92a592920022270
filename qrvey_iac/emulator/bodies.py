"""Reading a request body as a server must: at most ``max_body_bytes`` of it (413 above, told by
Content-Length before a byte is read, or while it streams), within ``body_timeout`` seconds
(408: a client trickling its body cannot hold a connection), nested at most ``max_body_depth``
levels (400, checked before parsing: no RecursionError, no traceback in the log)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from starlette.requests import Request

from qrvey_iac.emulator.config import EmulatorConfig
from qrvey_iac.emulator.errors import ApiError, invalid
from qrvey_iac.emulator.world import refuse_non_json

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")
CLOSE = {"Connection": "close"}   # the rest of a refused body is not waited for: the connection ends


async def read_json(request: Request, config: EmulatorConfig) -> Any:
    """The request's JSON body, None when it has none; ApiError (400, 408, 413) otherwise."""
    raw = await read_body(request, config)
    if not raw.strip():
        return None
    if nested_deeper(raw, config.max_body_depth):
        raise invalid(f"body is nested deeper than {config.max_body_depth} levels")
    try:
        return json.loads(raw, parse_constant=refuse_non_json)
    except RecursionError:                # not reached after the depth check; kept as a last line
        raise invalid(f"body is nested deeper than {config.max_body_depth} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise invalid("body is not valid JSON") from None


async def read_body(request: Request, config: EmulatorConfig) -> bytes:
    limit = config.max_body_bytes
    declared = request.headers.get("content-length", "")
    if not declared and "transfer-encoding" not in request.headers:
        return b""          # HTTP/1.1 (RFC 9112 section 6.3): a request with neither has no body
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(config.body_timeout):
            async for part in request.stream():
                size += len(part)
                if size > limit:
                    raise _too_large(limit)
                parts.append(part)
    except TimeoutError:
        message = f"Request Timeout: the body did not arrive within {config.body_timeout:g} s"
        raise ApiError(408, message, CLOSE) from None
    return b"".join(parts)


def nested_deeper(raw: bytes, bound: int) -> bool:
    """True when the JSON text ``raw`` opens more than ``bound`` arrays or objects inside one
    another (brackets inside strings do not count). A linear scan: no recursion."""
    if raw.count(b"[") + raw.count(b"{") <= bound:
        return False
    depth = 0
    for bracket in _BRACKET.finditer(_STRING.sub(b"", raw)):
        if bracket.group() in (b"[", b"{"):
            depth += 1
            if depth > bound:
                return True
        else:
            depth -= 1
    return False


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"Payload Too Large: the body is over the {limit} byte limit", CLOSE)
