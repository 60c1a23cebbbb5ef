"""``runlock.yaml``: the stages of a pipeline, read with every error placed at a line and column.

::

    stages:
      prepare:
        cmd: python prepare.py
        deps: [prepare.py, raw/]          # files, folders, ds:/split:/model: refs, other stages' outs
        params: [params.yaml:prepare.n]   # FILE:KEY (a bare KEY reads params.yaml)
        outs: [data/all.csv]              # files or folders, stored by content after the stage
        seed: 0                           # optional; passed as RUNLOCK_SEED and recorded in the lock

The graph logic here is pure: it reads the file once and touches neither the store nor any other
file (whether a plain dep exists is checked by ``load`` against the project root).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from runlock.errors import InvalidInput

SPEC_FILE = "runlock.yaml"
DEFAULT_PARAMS = "params.yaml"
STAGE_KEYS = ("cmd", "deps", "params", "outs", "seed", "desc")
REF_PREFIXES = ("ds:", "split:", "model:")


class SpecError(InvalidInput):
    """A mistake in runlock.yaml, at ``file:line:column``."""


@dataclass(frozen=True)
class Param:
    file: str
    key: str

    @property
    def text(self) -> str:
        return f"{self.file}:{self.key}"


@dataclass(frozen=True)
class Stage:
    name: str
    cmd: str
    deps: tuple[str, ...] = ()
    params: tuple[Param, ...] = ()
    outs: tuple[str, ...] = ()
    seed: int | None = None
    desc: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "cmd": self.cmd, "deps": list(self.deps), "params": [p.text for p in self.params],
                "outs": list(self.outs), "seed": self.seed, "desc": self.desc}


@dataclass(frozen=True)
class Pipeline:
    root: Path
    stages: dict[str, Stage]
    upstream: dict[str, tuple[str, ...]]         # stage -> stages whose outs it depends on
    producer: dict[str, str] = field(default_factory=dict)   # out path -> stage

    def order(self) -> list[str]:
        """Every stage, each after the stages it depends on (ties in file order)."""
        done: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for up in self.upstream[name]:
                visit(up)
            done.append(name)

        for name in self.stages:
            visit(name)
        return done

    def closure(self, targets: list[str] | None) -> list[str]:
        """``targets`` and everything upstream of them, in DAG order (all stages when None)."""
        if not targets:
            return self.order()
        unknown = [t for t in targets if t not in self.stages]
        if unknown:
            raise InvalidInput(f"No stage named {unknown[0]!r} in {SPEC_FILE}.",
                               hint=f"Stages: {', '.join(self.stages)}.")
        want: set[str] = set()
        todo = list(targets)
        while todo:
            s = todo.pop()
            if s not in want:
                want.add(s)
                todo.extend(self.upstream[s])
        return [s for s in self.order() if s in want]

    def downstream(self, name: str) -> list[str]:
        return [s for s in self.order() if name in self.upstream[s]]

    def producer_of(self, dep: str) -> str | None:
        """The stage whose out is ``dep`` or holds it (a file inside an out folder)."""
        for out, stage in self.producer.items():
            if dep == out or dep.startswith(out + "/") or out.startswith(dep + "/"):
                return stage
        return None


def is_ref(dep: str) -> bool:
    return dep.startswith(REF_PREFIXES)


def load(root: str | Path, text: str | None = None) -> Pipeline:
    """Read and check ``root/runlock.yaml`` (or ``text``)."""
    root = Path(root).resolve()
    path = root / SPEC_FILE
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidInput(f"No {SPEC_FILE} in {root}.",
                               hint="Write one (see docs/pipelines.md), or run from the pipeline's folder.") from None
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidInput(f"Cannot read {path}: {e}.") from None
    return _check_graph(root, _parse(text), text)


# -- reading ------------------------------------------------------------------------------
def _where(node: yaml.Node) -> str:
    m = node.start_mark
    return f"{SPEC_FILE}:{m.line + 1}:{m.column + 1}"


def _fail(node: yaml.Node, message: str, hint: str | None = None) -> SpecError:
    return SpecError(f"{_where(node)}: {message}", hint=hint)


def _parse(text: str) -> dict[str, tuple[Stage, dict[str, yaml.Node]]]:
    try:
        doc = yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"{SPEC_FILE}:{mark.line + 1}:{mark.column + 1}" if mark else SPEC_FILE
        raise SpecError(f"{at}: not valid YAML ({getattr(e, 'problem', None) or e}).") from None
    if doc is None:
        raise SpecError(f"{SPEC_FILE} is empty.", hint="Give it a `stages:` mapping.")
    top = _mapping(doc, "the file")
    for key, node in top.items():
        if key != "stages":
            raise _fail(node[0], f"unknown key {key!r}.", hint="The file holds one key: stages.")
    if "stages" not in top:
        raise _fail(doc, "no `stages:` mapping.")
    stages: dict[str, tuple[Stage, dict[str, yaml.Node]]] = {}
    for name, (key_node, body) in _mapping(top["stages"][1], "stages").items():
        if not name or any(c in name for c in " /:@") or name.startswith("."):
            raise _fail(key_node, f"stage name {name!r} is not allowed.",
                        hint="Use letters, digits, '.', '_' or '-'.")
        stages[name] = _stage(name, key_node, body)
    if not stages:
        raise _fail(top["stages"][1], "no stages.")
    return stages


def _mapping(node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise _fail(node, f"{what} must be a mapping.")
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for k, v in node.value:
        if not isinstance(k, yaml.ScalarNode):
            raise _fail(k, "a key must be a plain name.")
        if k.value in out:
            raise _fail(k, f"{k.value!r} is given twice.")
        out[k.value] = (k, v)
    return out


def _stage(name: str, key_node: yaml.Node, body: yaml.Node) -> tuple[Stage, dict[str, yaml.Node]]:
    fields = _mapping(body, f"stage {name!r}")
    for key, (k, _) in fields.items():
        if key not in STAGE_KEYS:
            raise _fail(k, f"unknown key {key!r} in stage {name!r}.", hint=f"A stage takes {', '.join(STAGE_KEYS)}.")
    if "cmd" not in fields:
        raise _fail(key_node, f"stage {name!r} has no cmd.")
    cmd_node = fields["cmd"][1]
    if not isinstance(cmd_node, yaml.ScalarNode) or not cmd_node.value.strip():
        raise _fail(cmd_node, f"the cmd of stage {name!r} must be a non-empty string.")
    nodes: dict[str, yaml.Node] = {"": key_node}
    deps = _paths(fields, "deps", name, nodes, refs_ok=True)
    outs = _paths(fields, "outs", name, nodes, refs_ok=False)
    params = tuple(_param(n, name) for n in _list(fields, "params"))
    seed = None
    if "seed" in fields:
        node = fields["seed"][1]
        try:
            seed = int(node.value) if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":int") else None
        except ValueError:
            seed = None
        if seed is None or seed < 0:
            raise _fail(node, f"the seed of stage {name!r} must be a non-negative integer.")
    desc = fields["desc"][1].value if "desc" in fields and isinstance(fields["desc"][1], yaml.ScalarNode) else ""
    return Stage(name, cmd_node.value, deps, params, outs, seed, desc), nodes


def _list(fields: dict, key: str) -> list[yaml.ScalarNode]:
    if key not in fields:
        return []
    node = fields[key][1]
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    for item in items:
        if not isinstance(item, yaml.ScalarNode) or not item.value.strip():
            raise _fail(item, f"each entry of {key} must be a non-empty string.")
    return items


def _paths(fields: dict, key: str, stage: str, nodes: dict, *, refs_ok: bool) -> tuple[str, ...]:
    out = []
    for item in _list(fields, key):
        text = item.value.strip()
        if refs_ok and is_ref(text):
            out.append(text)
            nodes[f"{key}:{text}"] = item
            continue
        norm = posixpath.normpath(text.rstrip("/"))
        if posixpath.isabs(norm) or norm == ".." or norm.startswith("../") or norm == ".":
            raise _fail(item, f"{key} of stage {stage!r}: {text!r} must be a path inside the pipeline's folder.")
        if norm.split("/")[0] in (".runlock", ".git") or norm == SPEC_FILE:
            raise _fail(item, f"{key} of stage {stage!r}: {text!r} is reserved.")
        if norm in out:
            raise _fail(item, f"{text!r} is listed twice in the {key} of stage {stage!r}.")
        out.append(norm)
        nodes[f"{key}:{norm}"] = item
    return tuple(out)


def _param(node: yaml.ScalarNode, stage: str) -> Param:
    text = node.value.strip()
    file, _, key = text.rpartition(":") if ":" in text else ("", "", text)
    file = file or DEFAULT_PARAMS
    if not key or ".." in key or key.startswith(".") or key.endswith("."):
        raise _fail(node, f"param {text!r} of stage {stage!r} is not FILE:KEY (e.g. params.yaml:train.lr).")
    return Param(posixpath.normpath(file), key)


# -- the graph ----------------------------------------------------------------------------
def _check_graph(root: Path, parsed: dict[str, tuple[Stage, dict[str, yaml.Node]]], text: str) -> Pipeline:
    producer: dict[str, str] = {}
    for name, (stage, nodes) in parsed.items():
        for out in stage.outs:
            for other_out, other in producer.items():
                if out == other_out or out.startswith(other_out + "/") or other_out.startswith(out + "/"):
                    what = "is also an out of" if out == other_out else f"overlaps {other_out!r}, an out of"
                    raise _fail(nodes[f"outs:{out}"], f"out {out!r} of stage {name!r} {what} stage {other!r}.",
                                hint="Each file or folder is produced by one stage.")
            producer[out] = name
    stages = {name: stage for name, (stage, _) in parsed.items()}
    pipe = Pipeline(root, stages, {}, producer)
    upstream: dict[str, tuple[str, ...]] = {}
    for name, (stage, nodes) in parsed.items():
        ups: list[str] = []
        for dep in stage.deps:
            if is_ref(dep):
                continue
            up = pipe.producer_of(dep)
            if up == name:
                raise _fail(nodes[f"deps:{dep}"], f"stage {name!r} depends on its own out {dep!r}.")
            if up is None and not (root / dep).exists():
                raise _fail(nodes[f"deps:{dep}"], f"dep {dep!r} of stage {name!r} does not exist and no stage "
                            "produces it.", hint="Create it, fix the path, or add the stage that writes it.")
            if up is not None and up not in ups:
                ups.append(up)
        upstream[name] = tuple(ups)
    pipe = Pipeline(root, stages, upstream, producer)
    cycle = _find_cycle(upstream)
    if cycle:
        node = parsed[cycle[0]][1][""]
        raise _fail(node, f"the stages form a cycle: {' -> '.join(cycle)}.",
                    hint="A stage cannot depend, directly or not, on its own outs.")
    return pipe


def _find_cycle(upstream: dict[str, tuple[str, ...]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for up in upstream[n]:
            if state.get(up) == 1:
                return [*path[path.index(up):], up]
            if up not in state and (found := visit(up)):
                return found
        path.pop()
        state[n] = 2
        return None

    for n in upstream:
        if n not in state and (found := visit(n)):
            return list(reversed(found))
    return None
