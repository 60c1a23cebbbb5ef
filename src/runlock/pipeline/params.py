"""Values of ``FILE:KEY`` params (YAML, JSON or TOML files; KEY dotted, e.g. ``train.lr``)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import yaml

from runlock import canonical
from runlock.errors import InvalidInput
from runlock.pipeline.spec import Param


class ParamFiles:
    """Each params file read once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._docs: dict[str, Any] = {}

    def value(self, p: Param) -> Any:
        doc = self._doc(p.file)
        cur: Any = doc
        for part in p.key.split("."):
            if not isinstance(cur, dict) or part not in cur:
                raise InvalidInput(f"Param {p.text}: {p.file} has no key {p.key!r}.",
                                   hint=f"Add it to {p.file}, or fix the name in runlock.yaml.")
            cur = cur[part]
        try:
            return canonical.normalize(cur)
        except InvalidInput as e:
            raise InvalidInput(f"Param {p.text} cannot be recorded: {e.message}") from None

    def _doc(self, file: str) -> Any:
        if file not in self._docs:
            path = self.root / file
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise InvalidInput(f"Params file {file} does not exist.", hint="Create it, or fix runlock.yaml.") from None
            except (OSError, UnicodeDecodeError) as e:
                raise InvalidInput(f"Cannot read params file {file}: {e}.") from None
            try:
                if path.suffix == ".json":
                    self._docs[file] = json.loads(text)
                elif path.suffix == ".toml":
                    self._docs[file] = tomllib.loads(text)
                else:
                    self._docs[file] = yaml.safe_load(text)
            except (ValueError, yaml.YAMLError) as e:
                raise InvalidInput(f"Params file {file} cannot be parsed: {str(e).splitlines()[0]}.") from None
        return self._docs[file]
