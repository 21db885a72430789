"""The import order is one way: no cycle among rnnzoo's modules, counting imports inside
functions (a lazy import still makes two modules depend on each other), and the TF-free half
(task types, runtime, samplers, tokenizers) imports no TensorFlow."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

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


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_counting_function_level_imports():
    graph = import_graph()
    assert "rnnzoo.tasks.translation" in graph and "rnnzoo.export.bundle" in graph
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_shared_code_names_no_family():
    """Only rnnzoo/families (and YAML, tests) name a family: the CLI, training, export and data
    code dispatch on task types."""
    graph = import_graph()
    for mod, deps in graph.items():
        if mod.startswith(("rnnzoo.families", "rnnzoo.registry")):
            continue
        family_deps = {d for d in deps if d.startswith("rnnzoo.families")}
        assert not family_deps, f"{mod} imports {family_deps}"


def test_task_types_and_runtime_import_without_tensorflow():
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx'):
                    raise ImportError('blocked: ' + name)
        sys.meta_path.insert(0, Block())
        from rnnzoo.apps import known_task_types, runtime_class
        from rnnzoo.export import runtime
        import rnnzoo.generation, rnnzoo.export.specs, rnnzoo.data.batching
        for t in known_task_types():
            runtime_class(t)
        import rnnzoo.cli
        rnnzoo.cli.build_parser()
        print('OK', known_task_types())
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "text-classification" in proc.stdout and "translation" in proc.stdout
