"""Layout rules of the repository, read from the source with ``ast``.

1. No import cycle among the modules of keras_basis/ (imports inside
   functions count: a lazy import is still a dependency).
2. No private name (``_x``) imported or used across folders: ``from M import _x``
   and ``M._x`` are allowed only when the importing file and M's file are in
   the same folder. Outside the package (examples/, tflite/, benchmarks/,
   tests/) no private module of keras_basis is imported either.
3. Keras internals (``keras.src`` and the private graph attributes in
   ``KERAS_INTERNALS``) appear only in keras_basis/_transform/graph.py.
4. The library never imports examples/, tflite/ or benchmarks/.
5. Every .py file under keras_basis/ and examples/ is under 600 lines.

Each check is parametrised per file.
"""

import ast
import collections
import functools
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "keras_basis"
KERAS_INTERNALS = frozenset({
    "_inbound_nodes", "_outbound_nodes", "_nodes_by_depth", "_keras_history",
    "_functional", "_layers",
})
GRAPH_MODULE = "keras_basis/_transform/graph.py"
FACES = ("examples", "tflite", "benchmarks")
MAX_LINES = 600

def _files(*folders):
    out = []
    for folder in folders:
        root = REPO / folder
        if root.is_dir():
            out += sorted(p for p in root.rglob("*.py") if ".venv" not in p.parts)
    return out


def _rel(path):
    return path.relative_to(REPO).as_posix()


def _params(paths):
    params = []
    for path in paths:
        rel = _rel(path)
        params.append(pytest.param(path, id=rel))
    return params


@functools.lru_cache(maxsize=None)
def _tree(path):
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


# --------------------------------------------------------------- resolving
def _module_file(dotted):
    """The repository file of a dotted module name, or None."""
    base = REPO.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path):
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(node, path):
    """The absolute module named by an ImportFrom (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    package = package[: len(package) - node.level + 1]
    return ".".join(package + ([node.module] if node.module else []))


def _imports(path):
    """Yield ``(module, name or None, node)`` for every import in the file.

    ``from M import n`` yields ``(M.n, None)`` when ``M.n`` is a module of the
    repository, else ``(M, n)``; ``import M`` yields ``(M, None)``. Script-style
    imports of a sibling file (``from common import x`` in examples/) are
    resolved against the importing file's folder.
    """
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _local(alias.name, path), None, node
        elif isinstance(node, ast.ImportFrom):
            module = _local(_absolute(node, path), path)
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                if _module_file(sub) is not None:
                    yield sub, None, node
                else:
                    yield module, alias.name, node


def _local(module, path):
    """``module`` as a repository module name.

    A script outside the package may import a file of its own folder by its
    bare name (``from common import x`` in examples/cifar10/); inside the
    package every import is absolute.
    """
    if _module_file(module) is not None or _rel(path).startswith(PACKAGE + "/"):
        return module
    if path.parent == REPO:
        return module
    folder = ".".join(path.parent.relative_to(REPO).parts)
    sibling = f"{folder}.{module}"
    return sibling if _module_file(sibling) is not None else module


# ------------------------------------------------------------------ cycles
def _package_graph():
    graph = collections.defaultdict(set)
    for path in _files(PACKAGE):
        source = _module_name(path)
        graph[source]
        for module, _, _ in _imports(path):
            if module == PACKAGE or module.startswith(PACKAGE + "."):
                if _module_file(module) is not None and module != source:
                    graph[source].add(module)
    return graph


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


_GRAPH = _package_graph()
_CYCLES = _cycles(_GRAPH)


@pytest.mark.parametrize("path", _params(_files(PACKAGE)))
def test_no_import_cycle(path):
    module = _module_name(path)
    cycles = [c for c in _CYCLES if module in c]
    assert not cycles, f"{module} is in an import cycle with {cycles[0]}"


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_lazy_imports_are_seen():
    """tflite.py imports only the leaf finite check; export.py's imports are found."""
    assert {m for m in _GRAPH["keras_basis.tflite"] if m.startswith(PACKAGE)} <= {
        "keras_basis._checks"}
    assert "keras_basis._convert" in _GRAPH["keras_basis.export"]


# ---------------------------------------------------------- private names
def _private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_uses(path):
    """``[(line, what)]`` of private names taken across folders."""
    bad = []
    inside = _rel(path).startswith(PACKAGE + "/")
    modules = {}  # local name -> module imported under it
    for module, name, node in _imports(path):
        target = _module_file(module)
        if target is None:
            continue
        if not inside and module.startswith(PACKAGE) and any(
            _private(part) for part in module.split(".")
        ):
            bad.append((node.lineno, f"private module {module}"))
            continue
        if name is not None and _private(name) and target.parent != path.parent:
            bad.append((node.lineno, f"from {module} import {name}"))
        if name is None:
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                full = alias.name if isinstance(node, ast.Import) else module
                modules[local] = full
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            module = _dotted(node.value, modules)
            target = None if module is None else _module_file(module)
            if target is not None and target.parent != path.parent:
                bad.append((node.lineno, f"{module}.{node.attr}"))
    return bad


def _dotted(node, modules):
    """The module a ``name.attr.attr`` expression names, through the file's imports."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in modules:
        return None
    return ".".join([modules[node.id]] + parts[::-1])


def test_private_use_finder():
    """The finder sees both import forms and attribute chains across folders."""
    folder = REPO / "tests"
    probe = folder / "_layout_probe.py"
    probe.write_text(
        "import keras_basis\n"
        "from keras_basis import layers\n"
        "from keras_basis.transform import _INFO\n"
        "x = keras_basis.transform._INFO\n"
        "y = layers._unknown\n"
        "z = keras_basis.maths.conv_params\n",
        encoding="utf-8",
    )
    try:
        bad = _private_uses(probe)
    finally:
        probe.unlink()
    assert [n for n, _ in bad] == [3, 4, 5], bad


@pytest.mark.parametrize("path", _params(_files(PACKAGE, *FACES, "tests")))
def test_no_private_name_across_folders(path):
    bad = _private_uses(path)
    assert not bad, f"{_rel(path)}: " + "; ".join(f"line {n}: {w}" for n, w in bad)


# --------------------------------------------------------- keras internals
def _keras_internals(path):
    bad = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Attribute) and node.attr in KERAS_INTERNALS:
            bad.append((node.lineno, node.attr))
        elif isinstance(node, ast.Constant) and node.value in KERAS_INTERNALS:
            bad.append((node.lineno, repr(node.value)))  # getattr(x, "_functional")
        elif (isinstance(node, ast.Attribute) and node.attr == "src"
              and isinstance(node.value, ast.Name) and node.value.id == "keras"):
            bad.append((node.lineno, "keras.src"))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""])
            bad += [(node.lineno, n) for n in names if n.startswith("keras.src")]
    return bad


@pytest.mark.parametrize(
    "path", _params(p for p in _files(PACKAGE, *FACES) if _rel(p) != GRAPH_MODULE)
)
def test_keras_internals_only_in_graph_module(path):
    bad = _keras_internals(path)
    assert not bad, f"{_rel(path)} uses Keras internals (only {GRAPH_MODULE} may): " + \
        "; ".join(f"line {n}: {w}" for n, w in bad)


def test_graph_module_comments_every_internal():
    """Each line of graph.py that reads an internal has a comment just above."""
    lines = (REPO / GRAPH_MODULE).read_text(encoding="utf-8").splitlines()
    uses = _keras_internals(REPO / GRAPH_MODULE)
    assert uses
    for lineno, what in uses:
        above = lines[max(0, lineno - 4): lineno]
        assert any("Internal:" in line for line in above), (lineno, what)


# ------------------------------------------------ library never imports faces
@pytest.mark.parametrize("path", _params(_files(PACKAGE)))
def test_library_does_not_import_the_faces(path):
    bad = [(node.lineno, module) for module, _, node in _imports(path)
           if module.split(".")[0] in FACES]
    assert not bad, f"{_rel(path)} imports {bad}"


# ------------------------------------------------------------------- sizes
@pytest.mark.parametrize("path", _params(_files(PACKAGE, "examples")))
def test_module_size(path):
    count = len(path.read_text(encoding="utf-8").splitlines())
    assert count < MAX_LINES, f"{_rel(path)} has {count} lines (limit {MAX_LINES})"
