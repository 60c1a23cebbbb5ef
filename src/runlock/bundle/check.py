"""``verify``: check a bundle offline, with nothing but the file and the store's public key.

In order, stopping at the first failure and naming the part that failed:

1. the file is a bundle: a tar whose first members are ``manifest.json`` and ``manifest.sig``;
2. the manifest is signed by the key given (so every hash it lists is the store's word);
3. the bundle's own ``store.pub`` is that key;
4. every other member is listed in the manifest with its sha256 and size, and nothing listed is missing;
5. every object's name is the sha256 of its bytes;
6. the checkpoint is signed by the key, and each audit entry leads to it by its inclusion proof;
7. every attestation an audit entry inside names (``runlock attest``'s, the production gate's) is
   inside, its bytes hash to the id that entry recorded, every envelope's signature verifies with
   the key, and each subject's digest is an object or an artifact inside (or one named excluded);
8. every run, snapshot, split and model version inside matches the state digest its sealing
   audit entry recorded (so a record cannot be edited even by someone who re-signs nothing),
   and every alias move (who, why, from, to) the one its audit entry recorded, each alias's
   moves forming one unbroken history from its creation;
9. the lineage is complete: each run's lock, its code (git bundle + diff), its environment
   (``env/RUN/pylock.toml`` and ``env/RUN/sbom.cdx.json``) and each input it names are inside
   (objects a ``--no-data`` bundle left out are listed as omitted; inputs, and an SBOM the
   exporter could not make, as excluded);
10. the file is byte for byte the canonical tar of its members (``layout.write``), so a changed
   byte in a tar header, in padding or after the end is caught too, not only one in a member.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from runlock import audit, dsse, keys, sealed
from runlock.bundle import layout
from runlock.errors import InvalidInput
from runlock.hashing import digest_stream

SMALL = 1 << 20     # objects and git bundles larger than this are hashed as streams, never held whole


@dataclass(frozen=True)
class BundleCheck:
    path: str
    ok: bool
    part: str | None = None            # the member (or "file", "manifest") that failed first
    reason: str | None = None
    checked: dict = field(default_factory=dict)
    root: str | None = None

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


class _Fail(Exception):
    def __init__(self, part: str, reason: str) -> None:
        super().__init__(reason)
        self.part, self.reason = part, reason


def verify(path: str | Path, key: keys.PublicKey) -> BundleCheck:
    """Check the bundle at ``path`` against ``key``; the first failure is named, nothing raised."""
    counts: dict[str, int] = {}
    root = None
    try:
        members = _read(path)
        manifest = _manifest(members, key)
        root = manifest.get("root")
        _members(members, manifest, key, counts)
        entries = _audit(members, key, counts)
        _attestations(members, manifest, entries, key, counts)
        _sealed(members, entries, counts)
        _aliases(members, entries, counts)
        _lineage(members, manifest, counts)
        _framing(path, members)
    except _Fail as f:
        return BundleCheck(str(path), False, f.part, f.reason, counts, root)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        # only a signed manifest gets this far: a bundle its key holder wrote in another shape
        return BundleCheck(str(path), False, "manifest.json", f"the bundle is not laid out as "
                           f"{layout.SCHEMA} describes ({type(e).__name__}: {e})", counts, root)
    return BundleCheck(str(path), True, None, None, counts, root)


def read_members(path: str | Path) -> dict[str, layout.Member]:
    """The bundle's members by name: bytes, or, for a large object or git bundle, a
    ``layout.Stream`` over its place in the file with its sha256 computed now (one pass, in chunks)."""
    try:
        return _read(path)
    except _Fail as f:
        raise ValueError(f"{f.part}: {f.reason}") from None


def _read(path: str | Path) -> dict[str, layout.Member]:
    out: dict[str, layout.Member] = {}
    try:
        for name, extent in layout.scan(str(path)):
            if name in out:
                raise _Fail(name, "the member appears twice in the bundle")
            if extent.size <= SMALL or not name.startswith(("objects/", "code/")):
                out[name] = extent.read()
                continue
            with extent.open() as f:
                sha, size = digest_stream(f)
            if size != extent.size:
                raise _Fail(name, f"the file ends inside this member ({size} of its {extent.size} bytes)")
            out[name] = layout.Stream(size, sha, extent.open)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise _Fail("file", f"not a readable bundle ({e})") from None
    names = list(out)
    if names[:2] != [layout.MANIFEST, layout.SIGNATURE]:
        raise _Fail("file", f"a bundle starts with {layout.MANIFEST} and {layout.SIGNATURE}")
    return out


def _bytes(data: layout.Member) -> bytes:
    if isinstance(data, layout.Stream):
        with data.open() as f:
            return f.read()
    return data


class _Compare:
    """A sink that compares what is written with a file's bytes, noting the first that differs."""

    def __init__(self, f: io.BufferedReader) -> None:
        self._f, self.pos, self.differs_at = f, 0, None

    def write(self, data: bytes) -> int:
        if self.differs_at is None:
            have = self._f.read(len(data))
            if have != data:
                self.differs_at = self.pos + next(
                    (i for i, (a, b) in enumerate(zip(data, have)) if a != b), min(len(data), len(have)))
        self.pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self.pos

    def rest(self) -> bytes:
        return self._f.read(1)


def _framing(path: str | Path, members: dict[str, layout.Member]) -> None:
    """The file must be exactly what ``layout.write`` makes of its members (compared as it is
    written, so nothing is held but one chunk)."""
    with open(path, "rb") as f:
        sink = _Compare(f)
        layout.write(sink, list(members.items()))
        if sink.differs_at is None and not sink.rest():
            return
    at = sink.differs_at if sink.differs_at is not None else sink.pos
    size = Path(path).stat().st_size
    raise _Fail("file", f"byte {at} differs from the canonical tar of its members (a tar header, padding or "
                        f"trailing bytes were changed; the file is {size} bytes, {sink.pos} expected)")


def _manifest(members: dict[str, bytes], key: keys.PublicKey) -> dict:
    body = members[layout.MANIFEST]
    try:
        sig = base64.b64decode(members[layout.SIGNATURE].strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _Fail(layout.SIGNATURE, "the signature is not base64") from None
    if not key.verify(sig, body):
        raise _Fail(layout.MANIFEST, f"the manifest's signature does not verify with key {key.keyid} "
                                     f"({layout.MANIFEST} or {layout.SIGNATURE} was changed, or another key signed it)")
    manifest = json.loads(body)
    if manifest.get("schema") != layout.SCHEMA:
        raise _Fail(layout.MANIFEST, f"unknown bundle schema {manifest.get('schema')!r}")
    return manifest


def _members(members: dict[str, bytes], manifest: dict, key: keys.PublicKey, counts: dict) -> None:
    listed = manifest.get("members") or {}
    for name, data in members.items():
        if name in (layout.MANIFEST, layout.SIGNATURE):
            continue
        want = listed.get(name)
        if want is None:
            raise _Fail(name, "the member is not listed in the signed manifest")
        sha = layout.sha256_of(data)
        if sha != want["sha256"] or layout.size_of(data) != want["size"]:
            raise _Fail(name, f"its sha256 is {sha}, the signed manifest says {want['sha256']}")
        if name.startswith("objects/") and sha != "sha256:" + name[8:]:
            raise _Fail(name, "the object's bytes do not hash to its name")
    missing = sorted(set(listed) - set(members))
    if missing:
        raise _Fail(missing[0], "the signed manifest lists this member, but the bundle lacks it")
    if members.get(layout.PUBLIC_KEY, b"").strip() != key.pem().strip():
        raise _Fail(layout.PUBLIC_KEY, "the bundle's public key is not the key given")
    counts["members"] = len(members)
    counts["objects"] = sum(n.startswith("objects/") for n in members)


def _audit(members: dict[str, bytes], key: keys.PublicKey, counts: dict) -> dict[int, dict]:
    entries: dict[int, dict] = {}
    names = sorted(n for n in members if n.startswith("audit/entries/"))
    if not names:
        return entries
    cp = json.loads(members[layout.CHECKPOINT])
    if not audit.Checkpoint(**cp).signature_ok(key):
        raise _Fail(layout.CHECKPOINT, "the audit checkpoint is not signed by this key")
    for name in names:
        data = json.loads(members[name])
        result = audit.check_proof(data, key)
        if not result.ok:
            raise _Fail(name, f"audit entry {result.seq}: {result.reasons[0]}")
        if data["checkpoint"] != cp:
            raise _Fail(name, "its proof leads to a checkpoint other than the bundle's")
        entries[data["entry"]["seq"]] = data["entry"]
    counts["audit_entries"] = len(entries)
    return entries


def _attestations(members: dict[str, layout.Member], manifest: dict, entries: dict[int, dict],
                  key: keys.PublicKey, counts: dict) -> None:
    """Each attestation an audit entry names: inside (or excluded), the bytes that entry recorded,
    signed by ``key``, and about subjects inside the bundle."""
    excluded = {x.get("input") for x in manifest.get("excluded") or []}
    known = _digests_inside(members, manifest)
    named = set()
    for seq, entry in sorted(entries.items()):
        oid = layout.attestation_of(entry)
        if oid is None:
            continue
        name = layout.attestation_member(oid)
        named.add(name)
        if name not in members:
            if f"attestation:{oid}" in excluded:
                continue
            raise _Fail(f"audit/entries/{seq:012d}.json", f"audit entry {seq} ({entry['action']} {entry['target']}) "
                        f"names the attestation {oid}, which is neither in the bundle nor named as excluded")
        _attestation(name, _bytes(members[name]), oid, key, known)
    stray = sorted(n for n in members if n.startswith("attestations/") and n not in named)
    if stray:
        raise _Fail(stray[0], "no audit entry inside names this attestation")
    counts["attestations"] = len(named & set(members))


def _attestation(name: str, data: bytes, oid: str, key: keys.PublicKey, known: set[str]) -> None:
    if layout.sha256(data) != oid:
        raise _Fail(name, f"the attestation's bytes do not hash to {oid}, the id its audit entry recorded")
    try:
        check = dsse.check_envelopes(dsse.parse_bundle(data, name), key)
    except InvalidInput as e:
        raise _Fail(name, e.message) from None
    if not check.ok:
        raise _Fail(name, f"the attestation does not verify with key {key.keyid}: {check.problems[0]}")
    for stmt in check.statements:
        for s in stmt["subject"]:
            want = (s.get("digest") or {}).get("sha256") if isinstance(s, dict) else None
            if not want or f"sha256:{want}" not in known:
                raise _Fail(name, f"its subject {s.get('name') if isinstance(s, dict) else s!r} (sha256:{want}) is "
                                  "not an object or artifact inside the bundle")


def _digests_inside(members: dict[str, layout.Member], manifest: dict) -> set[str]:
    """Objects inside or omitted, and every artifact's digest (a folder's is not an object)."""
    out = {"sha256:" + n[8:] for n in members if n.startswith("objects/")}
    out |= set((manifest.get("contents") or {}).get("omitted_objects") or [])
    for name in members:
        if name.startswith("records/runs/"):
            out |= {a["digest"] for a in json.loads(members[name])["artifacts"]}
    return out


def _sealed(members: dict[str, bytes], entries: dict[int, dict], counts: dict) -> None:
    """Each record's state against the digest its latest sealing entry recorded."""
    want: dict[str, tuple[int, str]] = {}
    for seq, e in sorted(entries.items()):
        kind = sealed.kind_of(e["action"], e["target"])
        state = (e.get("details") or {}).get("state")
        if kind and kind != "alias" and state:
            want[e["target"]] = (seq, state)
    n = 0
    for name, data in sorted(members.items()):
        for target, doc in _states(name, data):
            if target not in want:
                continue
            seq, digest = want[target]
            if sealed.digest(doc) != digest:
                raise _Fail(name, f"{target} differs from the state audit entry {seq} sealed")
            n += 1
    counts["sealed_records"] = n


ALIAS_ACTIONS = ("model.alias", "model.alias.import")


def _aliases(members: dict[str, bytes], entries: dict[int, dict], counts: dict) -> None:
    """Each alias move against the audit entry that recorded it, and each history unbroken."""
    n = 0
    for name in sorted(m for m in members if m.startswith("records/aliases/")):
        rec = json.loads(members[name])
        target = f"model:{rec['name']}@{rec['alias']}"
        before = None
        for move in rec["moves"]:
            seq = move["audit_seq"]
            e = entries.get(seq)
            if e is None or e["target"] != target or e["action"] not in ALIAS_ACTIONS:
                raise _Fail(name, f"the move of audit entry {seq} has no audit entry about {target} in the bundle")
            if move["from_version"] != before:
                raise _Fail(name, f"the move of audit entry {seq} starts from {_v(move['from_version'])}, but the "
                                  f"alias was at {_v(before)}")
            if sealed.digest(alias_state(rec["name"], rec["alias"], move)) != _alias_sealed(e):
                raise _Fail(name, f"the move of audit entry {seq} differs from what that entry recorded")
            before = move["to_version"]
            n += 1
    counts["alias_moves"] = n


def alias_state(name: str, alias: str, move: dict) -> dict:
    """The sealed state of one alias move, as ``runlock.sealed`` builds it."""
    return {"name": name, "alias": alias, "from": _v(move["from_version"]), "to": _v(move["to_version"]),
            "reason": move["reason"], "actor": move["actor"]}


def _alias_sealed(entry: dict) -> str:
    """The state digest the entry recorded; for an entry older than recorded states, its fields."""
    details = entry.get("details") or {}
    if details.get("state"):
        return details["state"]
    return sealed.digest({"name": entry["target"].split("@", 1)[0][6:], "alias": entry["target"].split("@", 1)[1],
                          "from": details.get("from"), "to": details.get("to"), "reason": details.get("reason"),
                          "actor": details.get("actor") or entry["actor"]})


def _v(version: int | None) -> str | None:
    return None if version is None else f"v{version}"


def _states(name: str, data: bytes) -> list[tuple[str, dict]]:
    """(audit target, canonical sealed state) of a record member, as ``runlock.sealed`` builds it."""
    if not name.startswith("records/") or name == "records/edges.json":
        return []
    rec = json.loads(data)
    if name.startswith("records/runs/"):
        run = rec["run"]
        doc = {"run": {k: v for k, v in run.items() if k not in sealed.RUN_SKIP},
               "artifacts": rec["artifacts"], "metrics": series_digests(rec)}
        return [(f"run:{run['id']}", doc)]
    if name.startswith("records/models/"):
        ref = rec["ref"]
        return [(f"model:{ref['name']}@v{ref['version']}", ref)]
    if name.startswith("records/snapshots/"):
        row = {c: rec["snapshot"][c] for c in sealed.snapshots.c.keys()}
        return [(f"ds:{r['name']}@v{r['version']}", {"ref": r, "snapshot": row}) for r in rec["refs"]]
    if name.startswith("records/splits/"):
        row = rec.get("sealed") or {c: rec["split"][c] for c in sealed.splits.c.keys()}
        for c, v in row.items():
            if (json.loads(v) if isinstance(v, str) and c in ("params", "counts") else v) != rec["split"].get(c):
                raise _Fail(name, f"the split's {c} differs from the value its seal covers")
        return [(f"split:{r['name']}@v{r['version']}", {"ref": r, "split": row}) for r in rec["refs"]]
    return []


def series_digests(rec: dict) -> dict[str, str]:
    """``sealed.series_digests`` over the points a run record carries."""
    cols = rec["metric_columns"]
    out: dict[str, hashlib._Hash] = {}
    for point in rec["metrics"]:
        p = dict(zip(cols, point))
        h = out.setdefault(f"{p['key']}#{p['rank']}", hashlib.sha256())
        h.update(f"{p['seq']}\t{p['step']}\t{p['value']!r}\t{p['raw']}\t{p['time']!r}\n".encode())
    return {k: "sha256:" + h.hexdigest() for k, h in out.items()}


def _lineage(members: dict[str, bytes], manifest: dict, counts: dict) -> None:
    excluded = {(x["run"], x["input"]) for x in manifest.get("excluded") or []}
    omitted = set((manifest.get("contents") or {}).get("omitted_objects") or [])
    have = {f"run:{r}" for r in manifest["contents"]["runs"]}
    have |= {f"snapshot:{s}" for s in manifest["contents"]["snapshots"]}
    have |= {f"split:{s}" for s in manifest["contents"]["splits"]}
    objects = {"sha256:" + n[8:] for n in members if n.startswith("objects/")}
    n = 0
    for name, data in sorted(members.items()):
        if not name.startswith("records/runs/"):
            continue
        rec = json.loads(data)
        rid, recipe = rec["run"]["id"], rec["run"].get("recipe_id")
        have |= {f"artifact:{a['digest']}" for a in rec["artifacts"]}
        if recipe and recipe not in objects:
            raise _Fail(name, f"run {rid}'s lock {recipe} is not in the bundle")
        lock = json.loads(_bytes(members[f"objects/{recipe[7:]}"])) if recipe else {}
        git = (lock.get("code") or {}).get("git") or {}
        if git.get("commit") and f"code/{git['commit']}.bundle" not in members:
            raise _Fail(name, f"run {rid}'s commit {git['commit']} has no git bundle inside")
        if git.get("diff") and git["diff"] not in objects:
            raise _Fail(name, f"run {rid}'s recorded diff {git['diff']} is not in the bundle")
        if f"env/{rid}/pylock.toml" not in members:
            raise _Fail(name, f"run {rid}'s environment lock env/{rid}/pylock.toml is not in the bundle")
        if f"env/{rid}/sbom.cdx.json" not in members and (rid, "environment:sbom") not in excluded:
            raise _Fail(name, f"run {rid}'s SBOM env/{rid}/sbom.cdx.json is neither in the bundle nor named "
                              "as excluded")
        for a in rec["artifacts"]:
            oid = a.get("manifest") or a["digest"]      # a folder's file list, or the file itself
            if oid not in objects:
                raise _Fail(name, f"run {rid}'s artifact {a['name']} ({oid}) is not in the bundle")
        n += 1
    for name, data in sorted(members.items()):
        if not name.startswith("records/runs/"):
            continue
        rec = json.loads(data)
        recipe = rec["run"].get("recipe_id")
        lock = json.loads(_bytes(members[f"objects/{recipe[7:]}"])) if recipe else {}
        for i in lock.get("inputs") or []:
            node = i.get("node")
            if node not in have and (rec["run"]["id"], node) not in excluded:
                raise _Fail(name, f"run {rec['run']['id']}'s input {node} is neither in the bundle nor named "
                                  "as excluded")
    for kind in ("snapshots", "splits"):
        for sid in manifest["contents"][kind]:
            if sid not in objects:
                raise _Fail(f"records/{kind}/{sid[7:]}.json", f"its manifest object {sid} is not in the bundle")
    counts["runs"] = n
