"""What ``run.log`` accepts: metric names, numbers and steps, checked at the call.

The checks run on the slow path only (a key not seen yet, a value that is not a ``float``), so a
training loop that logs the same float metrics every step pays for a dict copy. Whatever passes
here can be written by every backend: a name is non-empty text of at most ``MAX_KEY_LENGTH``
characters, valid Unicode (no lone surrogate such as ``"\\ud800"``, which no database can store)
and without control characters; a value is one real number; a step a non-negative 64-bit integer.
A refused call raises ``InvalidInput`` and nothing of it is kept.
"""

from __future__ import annotations

import numbers
import unicodedata
from collections.abc import Mapping
from typing import Any

from runlock.errors import InvalidInput

MAX_KEY_LENGTH = 250
MAX_STEP = 2**63 - 1


def as_dict(values: Any) -> dict:
    if isinstance(values, Mapping):
        return dict(values)
    raise InvalidInput(f"run.log takes a dict of metric name -> number, not {type(values).__name__}.")


def checked(values: dict, known: set[str]) -> dict:
    """A copy of ``values`` with every value a float; new names are checked, then remembered."""
    out = {}
    for k, v in values.items():
        if k not in known:
            check_key(k)
        out[k] = v if type(v) is float else as_float(k, v)
    known.update(out)
    return out


def check_key(key: Any) -> str:
    if type(key) is str and 0 < len(key) <= MAX_KEY_LENGTH and key.isprintable():
        return key
    if not isinstance(key, str):
        raise InvalidInput(f"Metric name {key!r} is not a string.")
    if not key:
        raise InvalidInput("A metric name is empty.", hint="Name every metric, e.g. 'train/loss'.")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"Metric name {key[:40]!r}… is longer than {MAX_KEY_LENGTH} characters.")
    for ch in key:
        kind = unicodedata.category(ch)
        if kind == "Cs":
            raise InvalidInput(f"Metric name {key!r} holds a lone surrogate {ch!r}, which is not text.",
                               hint="Decode names with errors='replace', or name the metric in plain text.")
        if kind == "Cc":
            raise InvalidInput(f"Metric name {key!r} holds the control character {ch!r}.",
                               hint="Use printable characters, e.g. 'train/loss'.")
    return key   # other non-printable characters (a no-break space, say) are valid text


def as_float(key: str, value: Any) -> float:
    if isinstance(value, numbers.Real):
        try:
            return float(value)
        except OverflowError:
            raise InvalidInput(f"Metric {key!r} got {value}, too large for a 64-bit float.") from None
    item = getattr(value, "item", None)
    shape = getattr(value, "shape", None)
    if callable(item) and shape is not None and len(tuple(shape)) == 0:
        v = item()  # a NumPy 0-d array or a 0-d torch tensor
        if isinstance(v, numbers.Real):
            return float(v)
    raise InvalidInput(f"Metric {key!r} got {type(value).__name__}; metrics take one number "
                       "(int, float, NumPy scalar or 0-d tensor).",
                       hint="Log each element under its own name, or store arrays with log_artifact().")


def as_step(step: Any) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise InvalidInput(f"Step {step!r} is not an integer.")
    if int(step) < 0:
        raise InvalidInput(f"Step {step} is negative; steps count from 0.")
    if int(step) > MAX_STEP:
        raise InvalidInput(f"Step {step} is larger than {MAX_STEP}.")
    return int(step)
