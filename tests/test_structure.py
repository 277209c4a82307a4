"""The package's structure, read from its source: no import cycle, an independent oracle, one
written layer interface."""

import ast
from pathlib import Path

import pytest

import fastrnn
from fastrnn import layer

PACKAGE = Path(fastrnn.__file__).parent


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name):
    path = PACKAGE.parent / Path(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def package_imports():
    """{module: the package's modules it imports}, from every import statement in its source,
    including those inside functions (an import made late to dodge a cycle is still an edge)."""
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name.split(".")[0] == "fastrnn")
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] != "fastrnn":
                    continue
                for alias in node.names:  # "from . import io" imports the module fastrnn.io
                    child = f"{source}.{alias.name}"
                    edges.add(child if _is_module(child) else source)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules (first == last), or None."""
    state = {}  # module -> "open" while on the path, "done" after

    def visit(module, path):
        state[module] = "open"
        for other in sorted(graph.get(module, ())):
            if state.get(other) == "open":
                return path[path.index(other):] + [other]
            if other not in state:
                found = visit(other, path + [other])
                if found:
                    return found
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module, [module])
            if found:
                return found
    return None


def test_the_package_imports_no_module_that_imports_it_back():
    cycle = find_cycle(package_imports())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_finds_a_cycle():
    # The check itself can fail: a graph with a cycle through three modules is reported.
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None


def test_the_graph_sees_relative_and_late_imports():
    graph = package_imports()
    assert "fastrnn.io" in graph["fastrnn.files"]  # from . import io
    assert "fastrnn.kernels.training" in graph["fastrnn.flat"]  # from .kernels import training
    assert "fastrnn.bench" in graph["fastrnn.cli"]  # imported inside the command that needs it


def test_the_reference_imports_nothing_from_the_kernels():
    graph = package_imports()
    for module, edges in graph.items():
        if module.startswith("fastrnn.reference"):
            assert not {e for e in edges if e.startswith("fastrnn.kernels")}, module


def test_io_is_a_leaf():
    assert {e for e in package_imports()["fastrnn.io"] if e.startswith("fastrnn")} == set()


@pytest.mark.parametrize("kind", sorted(layer.KINDS))
def test_every_layer_kind_implements_the_interface(kind):
    cls = layer.KINDS[kind]
    assert issubclass(cls, layer.Layer) and not getattr(cls, "__abstractmethods__", None), kind
