"""The project's modules import each other in one direction only (DESIGN §4, §5).

Every import counts: module level, inside functions and under `TYPE_CHECKING`, because a late import is
still a cycle a reader has to untangle. The graph is built from the source with `ast`, so the test sees
the code as written, not what happens to have been imported.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("model", "features", "flows", "serving", "monitoring", "benchmarks", "local_stack")


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph = {}
    for name, path in modules.items():
        targets = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import: resolve against this module's package
                    parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{parent}.{base}".rstrip(".")
                for alias in node.names:
                    # `from pkg import module` imports the module; `from module import name` the module
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_late_and_type_only_imports(tmp_path):
    modules = project_modules()
    graph = import_graph(modules)
    # a function-level import and a `from package import module` both count
    assert "model.training.train" in graph["model.persistence.saved"]
    assert "model.evaluation.metrics" in graph["model.evaluation.evaluate"]


def test_no_import_cycle_among_the_project_modules():
    found = cycles(import_graph(project_modules()))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_model_does_not_import_the_outer_packages():
    """Imports point one way: flows -> (features, model, serving, monitoring) -> model."""
    graph = import_graph(project_modules())
    outer = ("flows", "serving", "monitoring", "features", "benchmarks", "local_stack")
    # the torchrun entry point is a command, not a library module: it reads a named dataset itself
    allowed = {"model.training.distributed_train -> features.datasets"}
    leaks = sorted(f"{m} -> {t}" for m, ts in graph.items() if m.startswith("model")
                   for t in ts if t.startswith(outer))
    leaks = [leak for leak in leaks if leak not in allowed]
    assert not leaks, leaks
