"""Every fenced shell and Python block of README.md and docs/*.md runs, in order, in a fresh store.

The docs are a newcomer's first script, so they are tested the way a newcomer uses them: each page
is one session in a temporary git repository with a fresh store (`runlock init`), its blocks run
top to bottom as in one terminal (a ``cd`` in one block holds for the blocks after it, Python's
too), shell blocks in bash with `set -euo pipefail`, Python blocks in one interpreter
whose names carry from block to block (their source is readable, as a .py file's is, so a
function defined in one can be hashed by ``runlock.transform``). A block fails the test if it exits non-zero or raises.

Markers (HTML comments, invisible on GitHub):

- ``<!-- docs-test: illustrative: REASON -->`` on the line before a fence: a synopsis or an example
  that needs what a temporary store cannot have (a server, a GPU, a placeholder); it is not run,
  and the reason is required.
- ``<!-- docs-test: setup-python ... -->`` / ``<!-- docs-test: setup-bash ... -->``: hidden code that
  prepares what the reader is assumed to have (a data file, a config, the id of a run just made).
  Shell setup may ``export`` variables; they reach every later block of the page. ``DOCS_TEST_ROOT``
  names the repository's checkout, for a page that starts from its files (``examples/``).

``console`` blocks run their ``$ `` lines; other lines there are output and are not compared.
``docs/cli.md`` is generated from the CLI itself (tests/test_docs.py keeps it true) and is not run.
Pages are independent, so they run side by side, one per CPU (``page_runs``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "cli.md")]
SHELLS = {"bash", "sh", "shell", "console"}
MARK = re.compile(r"<!--\s*docs-test:\s*(illustrative|setup-python|setup-bash)\b(.*?)-->", re.S)
FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)
BLOCK_TIMEOUT = 300


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    lang: str        # "python" or "bash"
    code: str


def blocks(page: Path) -> tuple[list[Block], int]:
    """The runnable blocks of ``page`` in order, and how many fenced blocks were marked illustrative."""
    text = page.read_text()
    events: list[tuple[int, str, str, str]] = []   # (offset, kind, lang, code)
    for m in MARK.finditer(text):
        kind = m.group(1)
        if kind == "illustrative":
            events.append((m.start(), "illustrative", "", ""))
        else:
            events.append((m.start(), "code", kind.removeprefix("setup-"), m.group(2).strip("\n")))
    for m in FENCE.finditer(text):
        if any(start <= m.start() < start + len(full) for start, full in _comments(text)):
            continue  # a fence inside an HTML comment is not shown to readers
        lang = m.group(1).lower()
        if lang == "python" or lang in SHELLS:
            code = m.group(2)
            if lang == "console":
                code = "\n".join(ln[2:] for ln in code.splitlines() if ln.startswith("$ "))
            events.append((m.start(), "fence", "python" if lang == "python" else "bash", code))
        else:
            events.append((m.start(), "other", lang, ""))   # not run; but it takes a marker above it
    events.sort(key=lambda e: e[0])
    out, skipped, skip_next = [], 0, False
    for offset, kind, lang, code in events:
        if kind == "illustrative":
            skip_next = True
            continue
        if kind == "other":
            skip_next = False     # the marker was for this fence, which is not run anyway
            continue
        if kind == "fence" and skip_next:
            skipped, skip_next = skipped + 1, False
            continue
        name = page.relative_to(ROOT).as_posix() if page.is_relative_to(ROOT) else page.name
        out.append(Block(name, text.count("\n", 0, offset) + 1, lang, code))
    return out, skipped


def _comments(text: str) -> list[tuple[int, str]]:
    return [(m.start(), m.group(0)) for m in re.finditer(r"<!--.*?-->", text, re.S)]


DRIVER = r'''
import linecache, os, subprocess, sys, traceback
blocks = {blocks!r}
ns = {{"__name__": "__main__"}}
env_file = os.path.abspath(".docs-test-env")
cwd_file = os.path.abspath(".docs-test-cwd")
open(env_file, "w").close()
for where, lang, code in blocks:
    print(f"--- {{where}} ({{lang}})", flush=True)
    if lang == "python":
        linecache.cache[where] = (len(code), None, code.splitlines(True), where)  # source readable, as from a .py file
        try:
            exec(compile(code, where, "exec"), ns)
        except SystemExit as e:
            if e.code not in (0, None):
                print(f"FAILED {{where}}: SystemExit({{e.code}})", flush=True); sys.exit(1)
        except BaseException:
            traceback.print_exc(); print(f"FAILED {{where}}", flush=True); sys.exit(1)
        sys.stdout.flush(); sys.stderr.flush()
    else:
        script = f"set -euo pipefail\nset -a\n. {{env_file}}\nset +a\n{{code}}\n"
        script += f"export -p | grep -v -E ' (OLDPWD|PWD|SHLVL|_)=' > {{env_file}}\npwd > {{cwd_file}}\n"
        done = subprocess.run(["bash", "-c", script], timeout={timeout})
        if done.returncode != 0:
            print(f"FAILED {{where}}: exit {{done.returncode}}", flush=True); sys.exit(1)
        os.chdir(open(cwd_file).read().strip())   # a `cd` holds for the next blocks, as in a terminal
print("ALL BLOCKS RAN", flush=True)
'''


def run_page(page: Path, workdir: Path) -> subprocess.CompletedProcess:
    runnable, _ = blocks(page)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLOCK_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "100"
    env["DOCS_TEST_ROOT"] = str(ROOT)
    subprocess.run(["git", "init", "-q"], cwd=workdir, check=True)
    subprocess.run([Path(sys.executable).parent / "runlock", "init"], cwd=workdir, env=env, check=True,
                   capture_output=True)
    code = DRIVER.format(blocks=[(f"{b.page}:{b.line}", b.lang, b.code) for b in runnable], timeout=BLOCK_TIMEOUT)
    # The page runs in a process group of its own: whatever a block left running in the background
    # (a server it started, on a page that failed before stopping it) is stopped with it.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=workdir, env=env, stdout=out, stderr=err,
                                text=True, start_new_session=True)
        try:
            proc.wait(timeout=BLOCK_TIMEOUT * max(1, len(runnable)))
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())


def test_the_block_parser_honours_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("intro\n```bash\necho one\n```\n<!-- docs-test: illustrative -->\n```bash\nrunlock RUN\n```\n"
                    "<!-- docs-test: setup-bash\nexport RUN=abc\n-->\n```console\n$ echo $RUN\nabc\n```\n"
                    "```python\nx = 1\n```\n```json\n{}\n```\n```\nplain\n```\n")
    found, skipped = blocks(page)
    assert [(b.lang, b.code) for b in found] == [("bash", "echo one\n"), ("bash", "export RUN=abc"),
                                                 ("bash", "echo $RUN"), ("python", "x = 1\n")]
    assert skipped == 1


def test_a_marker_above_a_fence_that_is_not_run_skips_nothing_else(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- docs-test: illustrative: sample output -->\n```\n$ runlock x\n```\n"
                    "text\n```bash\necho runs\n```\n")
    found, skipped = blocks(page)
    assert [b.code for b in found] == ["echo runs\n"] and skipped == 0


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_illustrative_block_says_why(page: Path) -> None:
    """A block left unrun is rare and justified: the marker carries its reason,
    ``<!-- docs-test: illustrative: needs a GPU -->``."""
    bare = [page.read_text().count("\n", 0, m.start()) + 1 for m in MARK.finditer(page.read_text())
            if m.group(1) == "illustrative" and not m.group(2).strip(" :\n")]
    assert not bare, f"{page.name}: illustrative marker(s) without a reason on line(s) {bare}"


def test_what_a_page_leaves_running_is_stopped(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```bash\nsleep 300 > /dev/null 2>&1 &\necho $! > sleeper.pid\n```\n")
    work = tmp_path / "work"
    work.mkdir()
    done = run_page(page, work)
    assert done.returncode == 0, done.stdout + done.stderr
    stat = Path(f"/proc/{int((work / 'sleeper.pid').read_text())}/stat")
    for _ in range(50):   # SIGKILL is delivered asynchronously
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                break    # dead, not yet reaped by whoever adopted it
        except FileNotFoundError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the background process of the page is still running")


def test_a_cd_holds_for_the_blocks_after_it(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```bash\nmkdir sub && cd sub && touch here\n```\n```bash\ntest -f here\n```\n"
                    "```python\nimport os\nassert os.path.exists('here')\n```\n")
    work = tmp_path / "work"
    work.mkdir()
    done = run_page(page, work)
    assert done.returncode == 0 and "ALL BLOCKS RAN" in done.stdout, done.stdout + done.stderr


@pytest.fixture(scope="module")
def page_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Every page this session tests, started at once on one worker per CPU: each page has its own
    folder, store and processes, so the pages take about the time of the slowest few, not of all
    of them one after the other."""
    pages = [item.callspec.params["page"] for item in request.session.items
             if getattr(item, "originalname", "") == "test_every_block_of_the_page_runs"]
    with ThreadPoolExecutor(max_workers=max(1, min(len(pages), len(os.sched_getaffinity(0))))) as pool:
        yield {page: pool.submit(run_page, page, tmp_path_factory.mktemp(page.stem)) for page in pages}


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)[0]], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_block_of_the_page_runs(page: Path, page_runs: dict, tmp_path: Path) -> None:
    done = page_runs[page].result() if page in page_runs else run_page(page, tmp_path)
    assert done.returncode == 0 and "ALL BLOCKS RAN" in done.stdout, \
        f"{page.name}: a documented block failed\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
