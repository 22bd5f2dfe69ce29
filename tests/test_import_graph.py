"""The package's modules import each other without a cycle (issue 12).

The graph has an edge A -> B for every import of a yolo2retina module B at A's top level,
and also for imports inside functions: a function-level import that breaks a cycle at run
time still hides a two-way dependency. Imports under ``if TYPE_CHECKING:`` are left out
(they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "yolo2retina"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Dotted names this module imports (its own package's modules and names)."""
    found: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.update(f"{base}.{a.name}" for a in node.names)
            found.add(base)
        stack.extend(ast.iter_child_nodes(node))
    return {n for n in found if n == "yolo2retina" or n.startswith("yolo2retina.")}


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        targets = set()
        for imported in _imports(ast.parse(path.read_text()), name, path.name == "__init__.py"):
            # `from pkg import name` names a submodule or an attribute of pkg
            while imported not in files and "." in imported:
                imported = imported.rsplit(".", 1)[0]
            if imported in files and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


# The package root re-exports lazily (PEP 562) and the CLI finds its commands by name:
# both sit on top of everything, so their downward edges cannot close a cycle unless a
# module imports them back, which the graph still shows.
def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_cycle_check_finds_a_cycle() -> None:
    """The checker itself: a two-module loop and a three-module loop are reported."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert cycles(graph) == [["a", "b"], ["c", "d", "e"]]


def test_the_graph_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from yolo2retina import model\n"
        "def f():\n    from yolo2retina.formats import registry\n"
        "from . import image\n"
    )
    got = _imports(tree, "yolo2retina.dataset", is_package=False)
    assert "yolo2retina.formats.registry" in got and "yolo2retina.image" in got
    assert "yolo2retina.model" not in got


#: The data path, bottom up: a module imports only modules of its own layer or below.
LAYERS: tuple[tuple[str, ...], ...] = (
    # 0: values and files (choices: the names a setting may take, torch-free for the CLI)
    (
        "errors",
        "boxes",
        "target",
        "annotations",
        "image",
        "image_header",
        "atomic",
        "device",
        "outputs",
        "choices",
    ),
    # 1: annotations on disk and the torch-free tools over them (metric, figures)
    (
        "formats",
        "check",
        "convert",
        "split",
        "stats",
        "synthetic",
        "coco_matching",
        "coco_metric",
        "confusion",
        "plots",
    ),
    # 2: torch: datasets, model, checkpoint, tiling
    (
        "dataset",
        "anchors",
        "augment",
        "box_transforms",
        "losses",
        "weights",
        "backbones",
        "model_spec",
        "model",
        "checkpoint",
        "tiling",
        "counts",
        "distributed",
    ),
    # 3: running a model
    (
        "prediction",
        "predictor",
        "prediction_writers",
        "predict_folder",
        "evaluation",
        "onnx_export",
        "onnx_runtime",
        "score_threshold",
    ),
    # 4: training
    (
        "train",
        "train_config",
        "train_setup",
        "train_loop",
        "train_run",
        "train_fit",
        "train_resume",
        "train_recipe",
        "run_folder",
        "run_meta",
    ),
    # 5: the command line
    ("cli", "commands", "__main__"),
)


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2 or parts[1] in ("_version", "_moved"):
        return None  # the package root re-exports lazily; it sits above everything
    for i, names in enumerate(LAYERS):
        if parts[1] in names:
            return i
    raise AssertionError(f"{module}: add it to a layer in LAYERS")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Imports from a lower layer of :data:`LAYERS` into a higher one."""
    upward = []
    for module, targets in graph.items():
        here = _layer(module)
        for target in targets:
            there = _layer(target)
            if here is not None and there is not None and there > here:
                upward.append(f"{module} (layer {here}) imports {target} (layer {there})")
    return sorted(upward)


def test_imports_follow_the_data_path() -> None:
    """format -> annotations -> Dataset -> model -> evaluate/predict -> train -> CLI, one way."""
    upward = upward_imports(import_graph())
    assert not upward, "\n".join(upward)


def test_the_layer_check_finds_an_upward_import() -> None:
    graph = {"yolo2retina.formats.yolo": {"yolo2retina.dataset", "yolo2retina.errors"}}
    assert upward_imports(graph) == [
        "yolo2retina.formats.yolo (layer 1) imports yolo2retina.dataset (layer 2)"
    ]
