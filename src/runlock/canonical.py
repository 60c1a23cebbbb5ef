"""Canonical JSON: the one byte encoding that every hashed document goes through.

Rules: UTF-8, keys sorted, no insignificant whitespace, no NaN or infinity, only JSON types
(dict with str keys, list/tuple, str, int, float, bool, None). NumPy scalars are unwrapped to
their Python value. Anything else is an error naming where it sits: an audit tool never invents
an encoding for a value it does not understand.
"""

from __future__ import annotations

import json
import math
from typing import Any

from runlock.errors import InvalidInput
from runlock.hashing import digest_bytes


def normalize(value: Any, where: str = "") -> Any:
    """Return a plain-JSON copy of ``value`` or raise InvalidInput naming the bad path."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"Value at {where or 'top level'} is {value}; canonical JSON has no NaN or infinity.")
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidInput(f"Key {k!r} at {where or 'top level'} is not a string; JSON keys must be strings.")
            out[k] = v if _plain(v) else normalize(v, f"{where}.{k}" if where else k)
        return out
    if isinstance(value, (list, tuple)):
        return [v if _plain(v) else normalize(v, f"{where}[{i}]") for i, v in enumerate(value)]
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        return normalize(item(), where)
    raise InvalidInput(
        f"Value at {where or 'top level'} has type {type(value).__name__}, which is not JSON-serialisable.",
        hint="Use only str, int, float, bool, None, lists and dicts with string keys.",
    )


def _plain(v: Any) -> bool:
    """Already canonical as it is (the common case, checked without building a path for errors:
    a 10,000-file manifest holds 30,000 such values)."""
    t = type(v)
    return v is None or t is int or t is bool or (t is str and v.isascii())


def dumps(value: Any) -> bytes:
    """Canonical bytes of ``value``."""
    return json.dumps(normalize(value), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode("utf-8")


def digest(value: Any) -> str:
    """Content id of the canonical bytes of ``value``."""
    return digest_bytes(dumps(value))


def loads(data: bytes | str) -> Any:
    return json.loads(data)
