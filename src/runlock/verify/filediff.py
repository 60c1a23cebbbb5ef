"""What differs between two artifacts: which files, and inside them, which line or tensor.

``artifact_diff(store, a, b)`` compares two stored artifacts (files or folders) file by file:

    only in a / only in b    a file one folder has and the other lacks
    text                     UTF-8 files (JSON, YAML, Markdown, ...): the first differing line
    tensors                  safetensors files (read here, no torch needed) and torch files
                             (``.pt .pth .bin .ckpt``, read with ``torch.load(weights_only=True)``
                             when torch is installed): each tensor that differs, with its largest
                             absolute and relative difference, and whether it is within
                             ``|a - b| <= atol + rtol * |b|``
    bytes                    anything else: only that the bytes differ

The artifact's tier is ``bitwise`` (same content id), ``tolerance`` (every differing file is a
tensor file whose tensors all agree within the tolerances, same names, shapes and dtypes), else
``different``.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np

from runlock import artifacts
from runlock.errors import RunlockError
from runlock.store import Store

MAX_INSPECT = 1 << 30          # files larger than this are compared by hash only
MAX_LISTED = 20                # tensors listed per file
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
_SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
                       "I8": "i1", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?"}


@dataclass(frozen=True)
class ArtifactDiff:
    tier: str
    files: list[dict] = field(default_factory=list)

    @property
    def beyond_tolerance(self) -> bool:
        """True when a tensor file proves the weights differ beyond the tolerances."""
        return any(f.get("kind") == "tensors" and not f.get("within_tolerance") for f in self.files)


def artifact_diff(store: Store, a: artifacts.Artifact, b: artifacts.Artifact, *, rtol: float,
                  atol: float) -> ArtifactDiff:
    if a.digest == b.digest:
        return ArtifactDiff("bitwise")
    fa, fb = _files(store, a), _files(store, b)
    found = [{"path": p, "change": "only in a"} for p in sorted(set(fa) - set(fb))]
    found += [{"path": p, "change": "only in b"} for p in sorted(set(fb) - set(fa))]
    for path in sorted(set(fa) & set(fb)):
        if fa[path] != fb[path]:
            found.append({"path": path, "change": "differs",
                          **file_diff(store, path, fa[path], fb[path], rtol=rtol, atol=atol)})
    found.sort(key=lambda f: f["path"])
    close = bool(found) and all(f["change"] == "differs" and f.get("kind") == "tensors" and f["within_tolerance"]
                                for f in found)
    return ArtifactDiff("tolerance" if close else "different", found)


def _files(store: Store, art: artifacts.Artifact) -> dict[str, str]:
    if art.manifest is None:
        return {art.name: art.digest}
    return {e["path"]: e["digest"] for e in artifacts.folder_entries(store, art)}


def file_diff(store: Store, path: str, da: str, db: str, *, rtol: float, atol: float) -> dict:
    """How two versions of one file differ (their object ids differ)."""
    try:
        a, b = store.objects.get_bytes(da), store.objects.get_bytes(db)
    except RunlockError as e:
        return {"kind": "bytes", "note": f"cannot be read: {e.message}"}
    if max(len(a), len(b)) > MAX_INSPECT:
        return {"kind": "bytes", "note": "too large to inspect; the bytes differ"}
    suffix = PurePosixPath(path).suffix.lower()
    tensors_a = tensors_b = None
    if suffix == ".safetensors" or (a[:8] and _looks_like_safetensors(a) and _looks_like_safetensors(b)):
        tensors_a, tensors_b = _safetensors(a), _safetensors(b)
    elif suffix in TORCH_SUFFIXES:
        tensors_a, tensors_b = _torch_file(a), _torch_file(b)
    if tensors_a is not None and tensors_b is not None:
        return tensor_diff(tensors_a, tensors_b, rtol=rtol, atol=atol)
    return _text_diff(a, b) or {"kind": "bytes", "size": [len(a), len(b)]}


# -- tensors ----------------------------------------------------------------------------------
def tensor_diff(ta: dict[str, np.ndarray], tb: dict[str, np.ndarray], *, rtol: float, atol: float) -> dict:
    """Tensors by name: those missing on one side, of another shape or dtype, or with other values."""
    rows, structural = [], False
    for name in sorted(set(ta) | set(tb)):
        x, y = ta.get(name), tb.get(name)
        if x is None or y is None:
            rows.append({"name": name, "change": "only in a" if y is None else "only in b"})
            structural = True
        elif x.shape != y.shape or x.dtype != y.dtype:
            rows.append({"name": name, "change": "shape or dtype", "a": f"{x.dtype}{list(x.shape)}",
                         "b": f"{y.dtype}{list(y.shape)}"})
            structural = True
        elif x.tobytes() != y.tobytes():
            fx, fy = _as_float(x), _as_float(y)
            diff = np.abs(fx - fy)
            diff[np.isnan(fx) & np.isnan(fy)] = 0.0
            rel = diff / np.maximum(np.abs(fy), np.finfo(np.float64).tiny)
            rows.append({"name": name, "change": "values", "max_abs": float(np.nanmax(diff)) if diff.size else 0.0,
                         "max_rel": float(np.nanmax(rel)) if rel.size else 0.0,
                         "within_tolerance": bool(np.all(np.isclose(fx, fy, rtol=rtol, atol=atol, equal_nan=True)))})
    within = not structural and all(r.get("within_tolerance") for r in rows)
    return {"kind": "tensors", "within_tolerance": within, "tensors_differing": len(rows),
            "tensors": sorted(rows, key=lambda r: -(r.get("max_abs") or float("inf")))[:MAX_LISTED]}


def _as_float(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) if x.dtype != np.float64 else x


def _looks_like_safetensors(data: bytes) -> bool:
    if len(data) < 10:
        return False
    n = struct.unpack("<Q", data[:8])[0]
    return 2 <= n <= len(data) - 8 and data[8:9] == b"{"


def _safetensors(data: bytes) -> dict[str, np.ndarray] | None:
    """The tensors of a safetensors file as NumPy arrays (bfloat16 widened to float32 exactly)."""
    try:
        n = struct.unpack("<Q", data[:8])[0]
        header = json.loads(data[8:8 + n])
        body = memoryview(data)[8 + n:]
        out = {}
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            start, end = meta["data_offsets"]
            raw = body[start:end]
            if meta["dtype"] == "BF16":
                arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            elif meta["dtype"] in _SAFETENSORS_DTYPES:
                arr = np.frombuffer(raw, dtype=_SAFETENSORS_DTYPES[meta["dtype"]])
            else:
                arr = np.frombuffer(raw, dtype="u1")   # fp8 and others: compared as bytes
            out[name] = arr.reshape(meta["shape"]) if arr.size == int(np.prod(meta["shape"])) else arr
        return out
    except (ValueError, KeyError, TypeError, struct.error):
        return None


def _torch_file(data: bytes) -> dict[str, np.ndarray] | None:
    """Tensors of a ``torch.save`` file, by their path in the saved structure; None when torch is
    not installed or the file is not a weights-only torch file."""
    try:
        import torch  # optional: only to read torch files
    except ModuleNotFoundError:
        return None
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable file is compared by its bytes
        return None
    out: dict[str, np.ndarray] = {}

    def walk(value: object, name: str) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu()
            out[name or "tensor"] = (t.float() if t.dtype == torch.bfloat16 else t).numpy()
        elif isinstance(value, dict):
            for k in value:
                walk(value[k], f"{name}.{k}" if name else str(k))
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{name}[{i}]")
        else:
            out[name or "value"] = np.frombuffer(repr(value).encode(), dtype="u1")

    walk(obj, "")
    return out


# -- text -------------------------------------------------------------------------------------
def _text_diff(a: bytes, b: bytes) -> dict | None:
    try:
        la, lb = a.decode("utf-8").splitlines(), b.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return None
    if b"\0" in a or b"\0" in b:
        return None
    for i in range(max(len(la), len(lb))):
        x = la[i] if i < len(la) else None
        y = lb[i] if i < len(lb) else None
        if x != y:
            return {"kind": "text", "line": i + 1, "a": _clip(x), "b": _clip(y)}
    return {"kind": "text", "line": None, "note": "only line endings differ"}


def _clip(line: str | None, width: int = 200) -> str | None:
    return line if line is None or len(line) <= width else line[:width] + "…"
