"""The one way a request body becomes JSON, in every service: strict, bounded, never a 5xx.

Python's `json.loads` alone lets through what later fails deep inside a request: a lone
surrogate (`"\\ud800"`) that no UTF-8 encoder (MongoDB's, Redis's, the answer's) accepts, a
nesting deep enough to exhaust the recursion limit, a number of 5,000 digits. Here:
- the body must be UTF-8 (the contract's encoding), decoded strictly;
- nesting deeper than MAX_DEPTH is refused;
- strings and keys must be valid Unicode scalar values (no surrogates);
- any parsing failure is a `MalformedJson` (a ValueError) with a message saying why.

The checks that need a walk of the parsed value run only when the raw text could fail
them (more brackets than MAX_DEPTH, a surrogate escape), so a booking's body costs one
`json.loads` and two `str.count`s.
"""

from __future__ import annotations

import json
import re

MAX_DEPTH = 32
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class MalformedJson(ValueError):
    """A request body that is not acceptable JSON; the message says why."""


def loads(data: bytes | str):
    """Parse a request body; MalformedJson for anything but strict, bounded UTF-8 JSON."""
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedJson("The request body is not valid UTF-8") from exc
    else:
        text = data
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise MalformedJson(f"The JSON is nested deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:  # JSONDecodeError, and int() refusing a 5,000-digit number
        raise MalformedJson("The request body is not valid JSON") from exc
    deep = text.count("[") + text.count("{") > MAX_DEPTH
    surrogates = _SURROGATE_ESCAPE.search(text) is not None
    if deep or surrogates:
        _check(value)
    return value


def _check(value) -> None:
    """Walk a parsed value: depth at most MAX_DEPTH, no surrogate in any string or key."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise MalformedJson("The JSON holds an invalid Unicode string (a lone surrogate)")
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise MalformedJson(f"The JSON is nested deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
