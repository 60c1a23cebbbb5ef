"""Canonical JSON: the one byte encoding that every hashed document goes through.

Rules: UTF-8, keys sorted, no insignificant whitespace, no NaN or infinity, only JSON types
(dict with str keys, list/tuple, str, int, float, bool, None), text that is valid Unicode (no lone
surrogate), at most ``MAX_DEPTH`` levels of nesting. NumPy scalars are unwrapped to their Python
value. Anything else is an error naming where it sits: an audit tool never invents an encoding for
a value it does not understand.

``loads`` parses JSON that may come from a user: nesting too deep for the parser is a
``ValueError`` like any other malformed JSON, never a ``RecursionError``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from runlock.errors import InvalidInput
from runlock.hashing import digest_bytes

MAX_DEPTH = 100  # levels of lists and objects; no real config, record or manifest comes close


def normalize(value: Any, where: str = "", _depth: int = 0) -> Any:
    """Return a plain-JSON copy of ``value`` or raise InvalidInput naming the bad path."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _text(value, where)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"Value at {where or 'top level'} is {value}; canonical JSON has no NaN or infinity.")
        return value
    if isinstance(value, (dict, list, tuple)) and _depth >= MAX_DEPTH:
        raise InvalidInput(f"Value at {_short(where) or 'top level'} nests deeper than {MAX_DEPTH} levels.",
                           hint="Flatten the structure; canonical JSON allows at most "
                                f"{MAX_DEPTH} levels of lists and objects.")
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidInput(f"Key {k!r} at {where or 'top level'} is not a string; JSON keys must be strings.")
            out[_text(k, where)] = v if _plain(v) else normalize(v, f"{where}.{k}" if where else k, _depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [v if _plain(v) else normalize(v, f"{where}[{i}]", _depth + 1) for i, v in enumerate(value)]
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        return normalize(item(), where, _depth)
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
    """Parse JSON; a document nested too deeply for the parser is a ValueError, like bad syntax."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError(f"nested too deeply (canonical JSON allows {MAX_DEPTH} levels)") from None


def _text(value: str, where: str) -> str:
    """``value`` if it is valid Unicode text (UTF-8 encodable: no lone surrogate)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InvalidInput(
                f"Text at {_short(where) or 'top level'} holds the lone surrogate {value[e.start]!r} at "
                f"position {e.start}, which is not valid Unicode.",
                hint="Fix the text (a surrogate pair must be written as one character).") from None
    return value


def _short(where: str, n: int = 80) -> str:
    return where if len(where) <= n else "…" + where[-n:]
