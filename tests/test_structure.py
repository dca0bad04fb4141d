"""The shape of the code: emobench's import graph has no circle and no import from a lower
floor to a higher one, and no module is over 500 lines (the face renderer excepted).

The graph is built with :mod:`ast` from every ``import`` of an emobench module, those inside
functions included (a lazy import is still a dependency); imports under
``if TYPE_CHECKING:`` are left out (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "emobench"

#: Floors, lowest first: a module may import from its own floor and the floors below it.
#: A module's floor is that of its longest listed prefix (``emobench.models.registry``
#: before ``emobench.models``).
FLOORS: tuple[tuple[str, ...], ...] = (
    # base: errors, settings, registries, labels, files, progress, lifecycle
    (
        "emobench",  # the package's __init__ / __main__ are placed by their own entries
        "emobench.errors",
        "emobench.settings",
        "emobench.io",
        "emobench.registry",
        "emobench.labels",
        "emobench.answer_words",
        "emobench.answers",
        "emobench.progress",
        "emobench.provenance",
        "emobench.lifecycle",
    ),
    # what a benchmark is made of: datasets, decoding and sampling, metrics, long tail
    ("emobench.data", "emobench.video", "emobench.metrics", "emobench.longtail"),
    # the model backends, the chat layer and the training loops
    ("emobench.models", "emobench.chat", "emobench.training"),
    # the commands that build the shipped tiny models
    ("emobench.pretrain",),
    # the run configuration (it checks names against every registry below)
    ("emobench.config", "emobench.config_source"),
    # running a study and its results
    ("emobench.runner", "emobench.results"),
    # the report (reads files only)
    ("emobench.report",),
    # the command line
    ("emobench.cli", "emobench.__main__"),
)

#: Circles not yet broken, each as the set of its modules. The three lists below only
#: shrink: remove an entry when it is fixed (a stale entry does not fail the test, so that
#: the commit fixing it stays green; :func:`test_lists_are_current` prints them).
KNOWN_CIRCLES: set[frozenset[str]] = set()

#: Imports from a lower floor to a higher one not yet removed: (importer, imported).
KNOWN_UPWARD: set[tuple[str, str]] = set()

#: Modules allowed over :data:`MAX_LINES`: the face renderer for good, the others until
#: they are split (remove an entry when its module is split).
MAX_LINES = 500
OVERSIZED: set[str] = {
    "emobench.data.synth.faces",  # the face renderer: one drawing, kept whole
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The emobench modules ``name`` imports (``from a import b`` counts as ``a.b`` when
    that is a module, else ``a``)."""
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                out.add(sub if sub in known else mod)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found = set()
    for mod in out:
        # an import of a.b.c runs a/__init__ and a/b/__init__ too; count the module itself
        while mod and mod not in known:
            mod = mod.rpartition(".")[0]
        if mod.startswith("emobench") and mod != name and mod != "emobench":
            found.add(mod)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {
        name: _imports(
            ast.parse(path.read_text(), str(path)), name, path.name == "__init__.py", known
        )
        for name, path in mods.items()
    }


def floor(module: str) -> int:
    best, level = "", -1
    for i, prefixes in enumerate(FLOORS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > len(best):
                best, level = p, i
    return level


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[frozenset[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        work = [(v, iter(sorted(graph.get(v, ()))))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = set()
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.add(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        out.append(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_every_module_has_a_floor():
    assert [m for m in modules() if floor(m) < 0] == []


def test_no_import_circle():
    found = set(circles(import_graph()))
    new = [sorted(c) for c in found - KNOWN_CIRCLES]
    assert new == [], f"import circles: {new}"


def test_no_import_from_a_lower_floor_to_a_higher_one():
    graph = import_graph()
    upward = {(a, b) for a, deps in graph.items() for b in deps if floor(b) > floor(a)}
    new = sorted(upward - KNOWN_UPWARD)
    assert new == [], f"imports from a lower floor to a higher one: {new}"


def test_no_module_over_500_lines():
    sizes = {m: len(p.read_text().splitlines()) for m, p in modules().items()}
    big = {m for m, n in sizes.items() if n > MAX_LINES}
    new = sorted(f"{m} ({sizes[m]})" for m in big - OVERSIZED)
    assert new == [], f"modules over {MAX_LINES} lines: {new}"


def test_lists_are_current(capsys):
    """Entries of the lists above that are fixed already (printed, to be removed)."""
    graph = import_graph()
    found = set(circles(graph))
    upward = {(a, b) for a, deps in graph.items() for b in deps if floor(b) > floor(a)}
    sizes = {m: len(p.read_text().splitlines()) for m, p in modules().items()}
    stale = [sorted(c) for c in KNOWN_CIRCLES - found]
    stale += sorted(KNOWN_UPWARD - upward)
    stale += sorted(m for m in OVERSIZED if sizes.get(m, 0) <= MAX_LINES)
    with capsys.disabled():
        if stale:
            print(f"\ntest_structure: fixed, remove from the lists: {stale}")
