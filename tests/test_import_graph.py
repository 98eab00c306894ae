"""The runtime rule, read from the source: no module outside ``har/training/`` reaches TensorFlow.

Every module of the ``har`` package is parsed (ast, no import is executed); every ``import`` /
``from ... import`` statement counts, including those inside functions, with relative imports
resolved, ``from pkg import name`` read as the submodule ``pkg.name`` when there is one, and
``importlib.import_module("...")`` with a constant name (imports under ``if TYPE_CHECKING:`` never
run and are skipped). A module fails if TensorFlow
(``tensorflow``, ``keras``, ``tf_keras``) is reachable from it, directly or through other har
modules; the message names the chain with file and line of every step.

The only exceptions are in :data:`LAZY_ALLOWED`: modules whose imports *inside functions* may
reach TensorFlow (their module-level imports are still followed), each with the reason. Importing
a TensorFlow-free training module needs no exception (`har deploy` imports har.training.convert,
which runs the converter in a child process).
tests/test_cli_run.py::test_run_path_never_imports_tensorflow checks the same rule at run time
for `har run`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "har"
TF_ROOTS = ("tensorflow", "keras", "tf_keras")
TRAINING = "har.training"

# module -> why it may import TensorFlow / har.training lazily (inside a function body only).
# Entries for command modules that are not (yet) in this tree are ignored.
LAZY_ALLOWED: dict[str, str] = {
    "har.cli.cmd_train": "`har train` fits the model (workstation only)",
    "har.cli.cmd_tune": "`har tune` searches models by training them (workstation only)",
    "har.cli.cmd_adapt": "`har adapt --full` fine-tunes the whole network with Keras (workstation only; "
    "the default head refit is numpy)",
    "har.cli.cmd_evaluate": "`har evaluate MODEL_DIR` runs the Keras model of a model directory (workstation "
    "only; a bundle is scored with the TFLite runtime)",
    "har.cli.cmd_plot": "`har plot --model MODEL_DIR` builds the Keras predictor of a model directory "
    "(har.training.predict; workstation only; a bundle runs in the TFLite runtime)",
    "har.runtime.interpreter": "tf.lite is the last-resort interpreter when neither ai-edge-litert nor "
    "tflite-runtime is installed (a workstation that has TensorFlow anyway)",
}


@dataclass(frozen=True)
class Edge:
    target: str  # module name (har.x.y) or a top-level external name (numpy, tensorflow)
    line: int
    lazy: bool  # inside a function (or class body method): runs only when called


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _is_tf(name: str) -> bool:
    return name.split(".")[0] in TF_ROOTS


def _targets(name: str) -> list[str]:
    """What importing ``name`` runs: a har module and its parent packages, or the external root."""
    if not name.startswith("har.") and name != "har":
        return [name.split(".")[0]]
    parts = name.split(".")
    out = []
    for i in range(1, len(parts) + 1):
        mod = ".".join(parts[:i])
        if mod in MODULES:
            out.append(mod)
    return out


def _edges(mod: str, path: Path, source: str | None = None) -> list[Edge]:
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source, filename=str(path))
    is_pkg = path.name == "__init__.py"
    lazy_nodes: set[int] = set()
    never: set[int] = set()  # under `if TYPE_CHECKING:` (only type checkers read it)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            lazy_nodes.update(id(n) for n in ast.walk(node) if n is not node)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            never.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    out: list[Edge] = []

    def add(name: str, node: ast.AST) -> None:
        out.extend(Edge(t, node.lineno, id(node) in lazy_nodes) for t in _targets(name))  # type: ignore[attr-defined]

    for node in ast.walk(tree):
        if id(node) in never:
            continue
        if isinstance(node, ast.Import):
            for a in node.names:
                add(a.name, node)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                pkg = ".".join(base + ([node.module] if node.module else []))
            else:
                pkg = node.module or ""
            add(pkg, node)
            for a in node.names:
                if f"{pkg}.{a.name}" in MODULES:
                    add(f"{pkg}.{a.name}", node)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            add(node.args[0].value, node)
    return out


GRAPH = {m: _edges(m, p) for m, p in MODULES.items()}


def _followed(mod: str) -> list[Edge]:
    """The edges whose code may run when ``mod`` is used outside its allowed lazy paths."""
    if mod in LAZY_ALLOWED:
        return [e for e in GRAPH[mod] if not e.lazy]
    return GRAPH[mod]


def _step(mod: str, e: Edge) -> str:
    where = f"{MODULES[mod].relative_to(ROOT)}:{e.line}{' (inside a function)' if e.lazy else ''}"
    return f"{mod} [{where}] -> {e.target}"


def tf_chain(start: str) -> list[str] | None:
    """The shortest import chain from ``start`` to TensorFlow, as readable steps, or None."""
    prev: dict[str, tuple[str, Edge] | None] = {start: None}
    todo = [start]
    while todo:
        nxt: list[str] = []
        for mod in todo:
            for e in _followed(mod):
                if _is_tf(e.target):
                    steps = [_step(mod, e)]
                    cur = mod
                    while prev[cur] is not None:
                        parent, pe = prev[cur]  # type: ignore[misc]
                        steps.insert(0, _step(parent, pe))
                        cur = parent
                    return steps
                if e.target in MODULES and e.target not in prev:
                    prev[e.target] = (mod, e)
                    nxt.append(e.target)
        todo = nxt
    return None


def test_the_graph_is_read() -> None:
    """Sanity: the walk sees lazy imports, relative imports and the training modules' TensorFlow."""
    assert len(MODULES) > 60 and "har.wire.session" in MODULES
    assert any(_is_tf(e.target) for e in GRAPH["har.training._tf"])
    assert any(e.target == "har.training._tf" for e in GRAPH["har.training.model"])
    run_edges = {e.target for e in GRAPH["har.cli.cmd_run"]}
    assert "har.runtime.live" in run_edges and "har" in run_edges  # parents of imported modules count
    assert tf_chain("har.training.train") is not None
    src = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import tensorflow\ndef f():\n    from . import b\n"
    edges = _edges("har.wire.x", MODULES["har.wire.protocol"], src)
    assert [(e.target, e.lazy) for e in edges] == [("typing", False), ("har", True), ("har.wire", True)]


def test_allowlist_is_current() -> None:
    """Every allowed module present really needs its exception: one of its lazy imports reaches
    TensorFlow (keeps the list short)."""
    for mod, why in LAZY_ALLOWED.items():
        assert why and (mod in MODULES or mod.startswith("har.cli.cmd_")), f"{mod} in LAZY_ALLOWED does not exist"
        if mod not in MODULES:
            continue
        needed = any(e.lazy and (_is_tf(e.target) or (e.target in MODULES and tf_chain(e.target)))
                     for e in GRAPH[mod])
        assert needed, f"{mod} in LAZY_ALLOWED reaches TensorFlow by none of its lazy imports: remove it"


@pytest.mark.parametrize("mod", sorted(m for m in MODULES if not (m == TRAINING or m.startswith(TRAINING + "."))))
def test_no_tensorflow_outside_training(mod: str) -> None:
    chain = tf_chain(mod)
    if chain is not None:
        pytest.fail(f"{mod} reaches TensorFlow:\n  " + "\n  ".join(chain)
                    + "\n(only har/training/ may import it; a workstation-only command imports training "
                    "inside its function body and is listed in LAZY_ALLOWED with a reason)")
