"""Every command in README.md and docs/ runs, or says why it does not.

Each fenced ``bash``/``sh``/``console``/``python`` block carries an HTML comment right above it:

* ``<!-- docs: run -->``: run as written (a console block's ``$`` lines are run and, when
  the block shows output, the output is compared);
* ``<!-- docs: substitute: COMMAND -->``: a tiny run of the same thing (one shell line) is run
  instead, e.g. ``--steps 16`` for ``--steps 500``, or the preset's line of a block that also
  trains;
* ``<!-- docs: illustrative (WHY) -->``: not run, with the reason (trains for minutes, needs a
  server, several machines, a file that is not here).

Blocks run in a temporary folder with this environment's ``bin/`` first on PATH, offline;
``../shared/data`` means the data folder beside the checkout, and a block that needs it skips
when it is absent. The generated blocks (``python -m rnnzoo.docs_tables``) must be current.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
LANGUAGES = {"bash", "sh", "console", "python"}
FENCE_RE = re.compile(r"^(\s*)```(\w*)")
MARK_RE = re.compile(r"<!-- docs: (?P<kind>run|illustrative|substitute)"
                     r"(?: \((?P<why>[^)]*)\))?(?:: (?P<command>.+?))? -->")
COMMENT_RE = re.compile(r"^\s*<!--.*-->\s*$")
README_MAX_LINES = 400


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    marks: tuple[str, ...]  # the HTML comment lines right above the fence

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def doc_pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def blocks(path: Path, root: Path = REPO) -> list[Block]:
    """The fenced blocks of one page, with the comments stacked right above each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        opening = FENCE_RE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, language = opening.groups()
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        marks, j = [], i - 1
        while j >= 0 and COMMENT_RE.match(lines[j]):
            marks.insert(0, lines[j].strip())
            j -= 1
        body = "\n".join(ln[len(indent):] for ln in lines[i + 1:end]) + "\n"
        found.append(Block(path.relative_to(root).as_posix(), i + 1, language, body,
                           tuple(marks)))
        i = end + 1
    return found


ALL_BLOCKS = [b for p in doc_pages() for b in blocks(p)]
COMMAND_BLOCKS = [b for b in ALL_BLOCKS if b.language in LANGUAGES]


def marker(block: Block) -> re.Match:
    found = [m for m in map(MARK_RE.search, block.marks) if m]
    assert len(found) == 1, (
        f"{block.id}: a {block.language} block needs exactly one marker right above it "
        "(<!-- docs: run -->, <!-- docs: substitute: COMMAND -->, or "
        f"<!-- docs: illustrative (WHY) -->); found {len(found)}")
    return found[0]


def _environment(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["RNNZOO_OFFLINE"] = "1"
    env["RNNZOO_HOME"] = str(tmp_path / "rnnzoo_home")
    env["MPLBACKEND"] = "Agg"
    return env


def _with_data(text: str) -> str:
    """``../shared/data`` as the folder beside the checkout; skip when it is absent."""
    if "../shared/data" not in text:
        return text
    if not DATA.is_dir():
        pytest.skip(f"needs {DATA} (the shared data folder), absent here")
    return text.replace("../shared/data", str(DATA))


def _run(argv: list[str], tmp_path: Path, what: str) -> str:
    proc = subprocess.run(argv, cwd=tmp_path, env=_environment(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, (f"{what} exited {proc.returncode}\n--- stdout\n"
                                  f"{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
    return proc.stdout


def _run_console(block: Block, tmp_path: Path) -> None:
    """Each ``$`` line runs; the lines after it, when there are any, are its output."""
    steps: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line.rstrip())
    assert steps, f"{block.id}: a console block without a '$ ' line"
    for command, shown in steps:
        out = _run(["bash", "-c", _with_data(command)], tmp_path, f"{block.id}: $ {command}")
        if shown and "..." not in [ln.strip() for ln in shown]:
            got = [ln.rstrip() for ln in out.splitlines()]
            assert got == shown, (f"{block.id}: `{command}` prints something else now; "
                                  "regenerate with python -m rnnzoo.docs_tables\n" + out)


@pytest.mark.parametrize("block", COMMAND_BLOCKS, ids=lambda b: b.id)
def test_docs_block_runs_or_says_why_not(block, tmp_path):
    mark = marker(block)
    kind = mark["kind"]
    if kind == "illustrative":
        assert (mark["why"] or "").strip(), f"{block.id}: say why it is illustrative"
        return
    if kind == "substitute":
        assert mark["command"], f"{block.id}: a substitute names its command"
        _run(["bash", "-c", _with_data(mark["command"])], tmp_path, f"{block.id} (substitute)")
    elif block.language == "console":
        _run_console(block, tmp_path)
    elif block.language == "python":
        script = tmp_path / "block.py"
        script.write_text(_with_data(block.text), encoding="utf-8")
        _run([sys.executable, str(script)], tmp_path, block.id)
    else:
        _run(["bash", "-euo", "pipefail", "-c", _with_data(block.text)], tmp_path, block.id)


def test_blocks_are_found_and_most_run_cheaply():
    """The parser sees the pages' blocks (a broken fence would hide the rest of a page), and a
    representative set runs."""
    assert len(COMMAND_BLOCKS) > 50
    kinds = [MARK_RE.search(" ".join(b.marks)) for b in COMMAND_BLOCKS]
    ran = sum(1 for k in kinds if k and k["kind"] in ("run", "substitute"))
    assert ran >= 15


def test_generated_blocks_are_current():
    """The applications table and the ``rnnzoo list`` blocks equal what the generator writes
    now from the registry and the presets' metadata."""
    from rnnzoo.presets import missing_presets

    if missing_presets():
        pytest.skip("the tables list every preset: pip install ./presets/*/")
    from rnnzoo.docs_tables import main

    assert main(["--check", "--root", str(REPO)]) == 0, (
        "stale generated blocks: run python -m rnnzoo.docs_tables")


def test_generated_blocks_are_there():
    text = "\n".join(p.read_text(encoding="utf-8") for p in doc_pages())
    for name in ("applications-table", "rnnzoo-list", "rnnzoo-list-pretrained"):
        assert f"<!-- generated: {name}" in text, name
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "<!-- generated: applications-table" in readme


def test_readme_is_short_and_keeps_the_ci_command():
    readme = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(readme) <= README_MAX_LINES, f"README.md has {len(readme)} lines"
    at = next(i for i, ln in enumerate(readme) if ln.startswith("<!-- ci:test-command"))
    command = next(ln for ln in readme[at:] if ln.startswith("python3 -m venv"))
    assert command.endswith(" && pytest")



def test_an_unmarked_block_fails_and_markers_are_read(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n\n```bash\nrnnzoo list\n```\n\n<!-- docs: illustrative (trains) -->\n"
                    "<!-- ci:test-command -->\n```python\nprint(1)\n```\n", encoding="utf-8")
    unmarked, marked = blocks(page, root=tmp_path)
    assert (unmarked.id, marked.id) == ("page.md:3", "page.md:9")
    with pytest.raises(AssertionError, match="needs exactly one marker"):
        marker(unmarked)
    assert marker(marked)["kind"] == "illustrative" and marker(marked)["why"] == "trains"


def test_a_stale_generated_block_is_rewritten():
    from rnnzoo.docs_tables import regenerate

    text = ("<!-- generated: rnnzoo-list (python -m rnnzoo.docs_tables rewrites this block) -->\n"
            "```console\n$ rnnzoo list\nold_entry  some-task  gone\n```\n<!-- end generated -->\n")
    new = regenerate(text, "docs/models.md")
    assert "old_entry" not in new and "sentiment_bilstm" in new
    assert regenerate(new, "docs/models.md") == new
