"""The import order is one way: no cycle among rnnzoo's modules, counting imports inside
functions (a lazy import still makes two modules depend on each other), and the TF-free half
(task types, runtime, samplers, tokenizers) imports no TensorFlow."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import run_python, without_packages

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"rnnzoo": REPO / "rnnzoo", "rnnzoo.export": REPO / "export",
         "rnnzoo.zoo_configs": REPO / "zoo_configs"}


def _modules() -> dict[str, Path]:
    found = {}
    for prefix, root in ROOTS.items():
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([prefix, *parts])] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Module -> internal modules it imports anywhere in its body (module level or inside
    functions); ``rnnzoo`` itself is skipped (its public API is resolved lazily)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for target in targets:
                dep = _resolve(target, modules) if target.startswith("rnnzoo") else None
                if dep and dep != mod and dep != "rnnzoo":
                    graph[mod].add(dep)
    return graph


def test_shared_code_names_no_family():
    """Only rnnzoo/families (and YAML, tests) name a family: the CLI, training, export and data
    code dispatch on task types."""
    graph = import_graph()
    for mod, deps in graph.items():
        if mod.startswith(("rnnzoo.families", "rnnzoo.registry")):
            continue
        family_deps = {d for d in deps if d.startswith("rnnzoo.families")}
        assert not family_deps, f"{mod} imports {family_deps}"


# Modules that are TF-free by where they are: every application's data, inference and cli
# roles, the engines, and the runtime half of the core. A test imports each with TensorFlow,
# Keras and tf2onnx blocked.
TF_FREE_GLOBS = ("rnnzoo/apps/*/data.py", "rnnzoo/apps/*/inference.py", "rnnzoo/apps/*/cli.py",
                 "rnnzoo/apps/_classification.py", "rnnzoo/engines/*.py", "rnnzoo/evaluation.py",
                 "rnnzoo/task.py", "rnnzoo/registry.py", "rnnzoo/presets/*.py",
                 "rnnzoo/serving/*.py", "rnnzoo/data/batching.py", "rnnzoo/data/tokenizer.py",
                 "export/runtime.py", "export/bundle.py", "export/specs.py")


def tf_free_modules() -> list[str]:
    names = {str(p.relative_to(REPO)) for g in TF_FREE_GLOBS for p in REPO.glob(g)}
    modules = []
    for rel in sorted(names):
        parts = Path(rel).with_suffix("").parts
        parts = ("rnnzoo", "export", *parts[1:]) if parts[0] == "export" else parts
        modules.append(".".join(p for p in parts if p != "__init__"))
    return modules


def test_tf_free_modules_by_place_import_without_tensorflow():
    modules = tf_free_modules()
    assert "rnnzoo.apps.translation.inference" in modules and "rnnzoo.engines.ctc" in modules
    proc = run_python(without_packages(f"""
        import importlib
        for name in {modules!r}:
            importlib.import_module(name)
        from rnnzoo.apps import known_task_types, runtime_class
        for t in known_task_types():
            runtime_class(t)
        import rnnzoo.cli
        rnnzoo.cli.build_parser()
        print('OK', known_task_types())
    """))
    assert proc.returncode == 0, proc.stderr
    assert "text-classification" in proc.stdout and "translation" in proc.stdout


# -- every cycle, not only the first -------------------------------------------------------------
def package_dirs() -> dict[str, Path]:
    """Import names -> folders as pyproject's ``[tool.setuptools] package-dir`` maps them
    (``rnnzoo.export`` lives in ``export/``); read with a regex, as Python 3.10 has no tomllib."""
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    table = re.search(r"^package-dir\s*=\s*\{([^}]*)\}", text, re.M)
    assert table, "pyproject.toml: no [tool.setuptools] package-dir"
    return {name: REPO / folder
            for name, folder in re.findall(r'"([\w.]+)"\s*=\s*"([^"]+)"', table.group(1))}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component's cycles, one per edge inside it (the shortest way
    back), each starting at its smallest module: enough to name every import to remove."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                connect(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    cycles: set[tuple[str, ...]] = set()
    for component in components:
        for start in sorted(component):
            for first in sorted(graph[start] & component):
                back = {first: None}  # breadth-first from `first` back to `start`
                queue = [first]
                while queue and start not in back:
                    node = queue.pop(0)
                    for dep in sorted(graph[node] & component):
                        if dep not in back:
                            back[dep] = node
                            queue.append(dep)
                path, node = [], start
                while node is not None:
                    path.append(node)
                    node = back[node]
                ring = [start, *reversed(path)][:-1]  # start, first, ..., back to start
                pivot = ring.index(min(ring))
                cycles.add(tuple(ring[pivot:] + ring[:pivot]))
    return [[*c, c[0]] for c in sorted(cycles)]


def test_cycle_lister_finds_every_cycle():
    graph = {"a": {"b", "c"}, "b": {"a"}, "c": {"d"}, "d": {"c"}, "e": {"e"}, "f": {"a"}}
    assert find_cycles(graph) == [["a", "b", "a"], ["c", "d", "c"], ["e", "e"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    """No cycle among the modules of rnnzoo/ and export/, counting imports inside functions,
    package ``__init__`` re-exports and ``from pkg import submodule``."""
    assert package_dirs()["rnnzoo.export"] == REPO / "export"
    assert {k: v for k, v in package_dirs().items() if k in ROOTS} == ROOTS
    graph = import_graph()
    assert {"rnnzoo.presets.resolve", "rnnzoo.serving.app", "rnnzoo.export.bundle"} <= set(graph)
    assert "rnnzoo.presets.metadata" in graph["rnnzoo.presets"]  # re-exports count
    cycles = find_cycles(graph)
    text = "\n".join(" -> ".join(c) for c in cycles)
    assert not cycles, f"{len(cycles)} import cycle(s):\n{text}"
