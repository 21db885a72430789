"""The generated blocks of README.md and docs/: regenerated from the registry and the presets'
metadata, so a listing or a results table in the docs cannot drift from what ships.

A generated block sits between two HTML comments::

    <!-- generated: applications-table (python -m rnnzoo.docs_tables rewrites this block) -->
    ...
    <!-- end generated -->

``python -m rnnzoo.docs_tables`` rewrites every block of README.md and docs/**/*.md (run from a
checkout); ``--check`` only reports the stale ones and exits 1 (tests/test_docs.py runs it).
TF-free: the listings come from the YAML registry and the verified ``metadata.json`` files.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

BLOCK_RE = re.compile(r"(<!-- generated: (?P<name>[\w-]+)[^\n]*-->\n)(?P<body>.*?)"
                      r"(<!-- end generated -->)", re.S)
DOCS_PAGE = "docs/applications/{task}.md"  # relative to the checkout


@contextlib.contextmanager
def _empty_cache() -> Iterator[None]:
    """An empty ``RNNZOO_HOME``, offline: the listings show what is installed, not what this
    machine happens to have cached (the docs test runs the commands the same way)."""
    saved = {k: os.environ.get(k) for k in ("RNNZOO_HOME", "RNNZOO_OFFLINE")}
    with tempfile.TemporaryDirectory() as home:
        os.environ.update(RNNZOO_HOME=home, RNNZOO_OFFLINE="1")
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _cli_output(*argv: str) -> str:
    """What ``rnnzoo ARGV`` prints, lines right-stripped (the docs test compares the same)."""
    from rnnzoo.cli import main

    out = io.StringIO()
    with _empty_cache(), contextlib.redirect_stdout(out):
        code = main(list(argv))
    if code:
        raise RuntimeError(f"rnnzoo {' '.join(argv)} exited {code}")
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


def _console_block(*argv: str) -> str:
    """A console block that the docs test runs and compares with its output."""
    command = "rnnzoo " + " ".join(argv)
    return (f"<!-- docs: run (the output is compared) -->\n```console\n$ {command}\n"
            f"{_cli_output(*argv)}\n```\n")


def _number(value: float) -> str:
    return f"{value:.4g}"


def _headline(meta: dict) -> str:
    """The preset's headline metric (``rnnzoo.apps.headline``: what ``rnnzoo list`` and the
    model cards show) with its split."""
    from rnnzoo.apps import headline

    head = headline(meta["task"], meta["metrics"], meta["family"])
    better = "higher" if head.direction == "max" else "lower"
    shown = "not recorded" if head.value is None else f"**{_number(head.value)}**"
    return f"{head.key} {shown} ({meta['split']}; {better} is better)"


def _published(meta: dict) -> str:
    published = meta.get("published") or {}
    if not published:
        return "none"
    return ", ".join(f"{key} {_number(value)}" for key, value in published.items())


def _preset_metadata() -> dict[str, dict]:
    """Every preset the zoo's entries declare, from its verified metadata; a preset that is
    not installed is an error naming its distribution (the tables must list all of them)."""
    from rnnzoo.presets import missing_presets, preset_info
    from rnnzoo.registry import list_models

    missing = missing_presets()
    if missing:
        wanted = " ".join(sorted(set(missing.values())))
        raise RuntimeError(f"presets not installed: {', '.join(sorted(missing))}; the tables "
                           f"list every preset: pip install ./presets/*/ ({wanted})")
    return {name: preset_info(name) for name in list_models(pretrained=True)}


def applications_table(page: str = "README.md") -> str:
    """One row per preset (and per application without one): entries, verb, headline metric
    with its split, published anchor, and where the preset is installed from. Links are
    relative to ``page`` (a path in the checkout)."""
    from rnnzoo.apps import known_task_types, verb_of
    from rnnzoo.presets import distribution_name
    from rnnzoo.registry import list_models

    with _empty_cache():
        metadata = _preset_metadata()
    core = Path(__file__).resolve().parent / "pretrained"
    rows = ["| application | verb | entries | preset (install) | headline metric (split) "
            "| published anchor |", "|---|---|---|---|---|---|"]
    for task in known_task_types():
        entries = ", ".join(f"`{n}`" for n in list_models(task=task))
        target = os.path.relpath(DOCS_PAGE.format(task=task), os.path.dirname(page) or ".")
        link = f"[{task}]({Path(target).as_posix()})"
        presets = [n for n, meta in metadata.items() if meta["task"] == task]
        if not presets:
            rows.append(f"| {link} | `{verb_of(task)}` | {entries} | none shipped | "
                        "train one: `rnnzoo train` | |")
        for name in presets:
            meta = metadata[name]
            where = "`rnnzoo`" if (core / name).is_dir() else f"`{distribution_name(task)}`"
            rows.append(f"| {link} | `{verb_of(task)}` | {entries} | `{name}` ({where}) | "
                        f"{_headline(meta)} | {_published(meta)} |")
    return "\n".join(rows) + "\n"


def limits_table() -> str:
    """Every limit of ``rnnzoo.limits`` with its default, what it bounds and how to raise it."""
    from rnnzoo.limits import describe

    rows = ["| Limit | Default | Bounds | Raise it |", "|---|---|---|---|"]
    for name, default, doc in describe():
        rows.append(f"| `{name}` | {default:,} | {doc} | `--limit {name}=N` |")
    return "\n".join(rows) + "\n"


# name -> the block's text for a page (a path in the checkout, for relative links)
GENERATORS: dict[str, Callable[[str], str]] = {
    "limits-table": lambda page: limits_table(),
    "rnnzoo-list": lambda page: _console_block("list"),
    "rnnzoo-list-pretrained": lambda page: _console_block("list", "--pretrained"),
    "applications-table": applications_table,
}


def regenerate(text: str, page: str = "README.md",
               cache: dict[tuple[str, str], str] | None = None) -> str:
    """``text`` (of ``page``) with every generated block rewritten; an unknown block name is
    an error."""
    cache = {} if cache is None else cache

    def replace(match: re.Match) -> str:
        name = match.group("name")
        if name not in GENERATORS:
            raise KeyError(f"{page}: unknown generated block {name!r}; known: "
                           f"{', '.join(GENERATORS)}")
        key = (name, os.path.dirname(page))
        if key not in cache:
            cache[key] = GENERATORS[name](page)
        return f"{match.group(1)}{cache[key]}{match.group(4)}"

    return BLOCK_RE.sub(replace, text)


def doc_files(root: Path) -> list[Path]:
    """README.md and every page under docs/ of a checkout."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnzoo.docs_tables", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="report stale generated blocks and exit 1; write nothing")
    parser.add_argument("--root", type=Path, default=Path.cwd(),
                        help="the checkout (default: the current directory)")
    args = parser.parse_args(argv)
    cache: dict[tuple[str, str], str] = {}
    stale = []
    for path in doc_files(args.root):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        new = regenerate(text, path.relative_to(args.root).as_posix(), cache)
        if new != text:
            stale.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    verb = "stale" if args.check else "rewritten"
    for path in stale:
        print(f"{verb}: {path.relative_to(args.root)}")
    if args.check and stale:
        print("regenerate with: python -m rnnzoo.docs_tables", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
