"""The library's import graph: data flows one way, with no cycles and no upward imports.

Every module of ``handlib`` has a layer (below). A module may import (at module level or inside a
function) only modules of its own layer or lower ones; module-level imports form no cycle; and a
model module (``handlib.models`` minus the summary / bench tools) imports nothing above layer 1.
A new module must be given a layer here: the test fails for a module it does not know.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (module or package prefix, layer); the longest matching prefix wins.
LAYERS = (
    # 0: leaves: tables, paths, errors, file writing, recipes, the sample structure
    ("handlib.errors", 0), ("handlib.paths", 0), ("handlib.fileio", 0), ("handlib.recipe", 0),
    ("handlib.joints", 0), ("handlib.sample", 0), ("handlib.device", 0), ("handlib.distributed", 0),
    ("handlib.notebook", 0), ("handlib.dataset_registry", 0), ("handlib.data.checksums", 0),
    ("handlib.data.printed", 0), ("handlib.synth.rng", 0), ("handlib.synth.kinematics", 0),
    # 1: data (real and synthetic), geometry, metrics, losses, profiles, checkpoints, the models
    ("handlib.geometry", 1), ("handlib.profiles", 1), ("handlib.metrics", 1), ("handlib.losses", 1),
    ("handlib.checkpoint", 1), ("handlib.data", 1), ("handlib.synth", 1), ("handlib.models", 1),
    ("handlib.restoration", 1),
    # 2: datasets for training, the loop, results records, plots
    ("handlib.datasets", 2), ("handlib.train", 2), ("handlib.results", 2), ("handlib.plots", 2),
    # 3: runs, grids, reports, model tools
    ("handlib.runs", 3), ("handlib.experiments", 3), ("handlib.report", 3), ("handlib.step_profile", 3),
    ("handlib.one_bench", 3), ("handlib.models.summary", 3), ("handlib.models.bench", 3),
    # 4: command lines and the book tooling
    ("handlib.cli", 4), ("handlib.train_cli", 4), ("handlib.leaderboard_cli", 4), ("handlib.infer_cli", 4), ("handlib.data.cli", 4), ("handlib.data.bench", 4),
    ("handlib.synth.cli", 4), ("handlib.book", 4), ("handlib.__main__", 4), ("handlib", 4),
)
MODEL_TOOLS = ("handlib.models.summary", "handlib.models.bench")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / "handlib").rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def layer(module: str) -> int:
    matches = [(len(prefix), level) for prefix, level in LAYERS
               if module == prefix or module.startswith(prefix + ".")]
    if not matches:
        raise AssertionError(f"{module} has no layer in tests/test_import_graph.py LAYERS")
    return max(matches)[1]


def imports(module: str) -> tuple[set[str], set[str]]:
    """(module-level, inside-function) handlib modules imported by ``module``."""
    top, inner = set(), set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("handlib"):
            targets = [f"{node.module}.{alias.name}" for alias in node.names]
            if node.module != "handlib":
                targets.append(node.module)
        else:
            continue
        for target in targets:
            resolved = next((target.rsplit(".", k)[0] for k in range(target.count(".") + 1)
                             if target.rsplit(".", k)[0] in MODULES), None)
            if resolved and resolved != module and resolved != "handlib":
                (top if node.col_offset == 0 else inner).add(resolved)
    return top, inner


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_upward_imports(module):
    top, inner = imports(module)
    upward = sorted(m for m in top | inner if layer(m) > layer(module))
    assert not upward, f"{module} (layer {layer(module)}) imports higher layers: " + ", ".join(
        f"{m} ({layer(m)})" for m in upward)


def test_model_modules_import_nothing_above_models():
    for module in MODULES:
        if module.startswith("handlib.models") and module not in MODEL_TOOLS:
            top, inner = imports(module)
            above = sorted(m for m in top | inner if layer(m) > 1)
            assert not above, f"model module {module} imports {above}"


def test_imports_have_no_cycle():
    """No cycle, counting imports inside functions too: a function-level import that closes a circle
    still ties two modules together (one run should not know about grids)."""
    graph = {m: imports(m)[0] | imports(m)[1] for m in MODULES}
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path + [node, nxt]))
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_the_cycle_check_sees_a_function_level_cycle(monkeypatch):
    """The rule can fail: runs importing experiments inside a function closes a circle."""
    fake = ROOT / "handlib" / "runs.py"
    monkeypatch.setitem(MODULES, "handlib.runs", fake)
    original = imports

    def with_back_edge(module):
        top, inner = original(module)
        return (top, inner | {"handlib.experiments"}) if module == "handlib.runs" else (top, inner)

    monkeypatch.setitem(globals(), "imports", with_back_edge)
    with pytest.raises(AssertionError, match="import cycle"):
        test_imports_have_no_cycle()


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The rule can fail: a layer-1 module importing the training loop is reported."""
    fake = tmp_path / "fake.py"
    fake.write_text("def f():\n    from handlib.train import fit\n")
    monkeypatch.setitem(MODULES, "handlib.models.fake", fake)
    with pytest.raises(AssertionError, match="handlib.train"):
        test_no_upward_imports("handlib.models.fake")


def _rooms(module: str) -> str:
    """A module's room: its top-level module or package under handlib (handlib.data, handlib.geometry...)."""
    return ".".join(module.split(".")[:2])


def room_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    rooms: dict[str, set[str]] = {}
    for module, targets in graph.items():
        rooms.setdefault(_rooms(module), set()).update(_rooms(t) for t in targets if _rooms(t) != _rooms(module))
    found = []
    for start in sorted(rooms):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(rooms.get(node, ())):
                if nxt == start:
                    found.append(path + [start])
                elif nxt not in path:
                    stack.append((nxt, path + [nxt]))
    return found


def test_rooms_import_each_other_in_one_direction():
    """Packages and top-level modules form no circle either (geometry once read the dataset table from
    inside handlib.data, whose loaders import geometry)."""
    graph = {m: imports(m)[0] | imports(m)[1] for m in MODULES}
    assert not room_cycles(graph), room_cycles(graph)[0]
    # the check can fail: geometry reading a table from inside handlib.data again
    assert room_cycles({**graph, "handlib.geometry": graph["handlib.geometry"] | {"handlib.data.base"}})
