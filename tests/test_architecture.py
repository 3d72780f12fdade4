"""The house's rules, checked: floors whose imports only go down (import-linter's contract in pyproject.toml),
no import cycle among deepdive's modules (imports inside functions included), small modules and functions,
argparse only in the command floor, no engine's name tested outside the engines' declarations, no private
name imported across modules, one loop with no subclass overriding it."""
import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "deepdive"
MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_TOP_MODULES = 400, 60, 12


def modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    """import-linter's command on the contract of ``cwd/pyproject.toml``, the package found on ``pythonpath``."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", code, "--no-cache"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_floors_contract_holds():
    done = lint_imports(ROOT, ROOT / "src")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "floors: imports only go down KEPT" in done.stdout
    assert "NumPy only" in done.stdout and "BROKEN" not in done.stdout


@pytest.mark.parametrize("floor, climb", [
    ("config/names.py", "deepdive.training.loop"),  # the configuration reaching for the loop
    ("storage/runs.py", "deepdive.cli"),  # storage reaching for the command line
    ("scratch/tensor.py", "deepdive.errors"),  # the NumPy engine reaching into deepdive
])
def test_one_upward_import_inside_a_function_breaks_the_contract(tmp_path, floor, climb):
    """A copy of the package with one import climbing up, hidden inside a function: the contract fails."""
    shutil.copytree(SRC, tmp_path / "src" / "deepdive", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "src" / "deepdive" / floor, "a") as f:
        f.write(f"\n\ndef _climb():\n    import {climb}  # noqa: F401\n")
    done = lint_imports(tmp_path, tmp_path / "src")
    assert done.returncode != 0
    assert "BROKEN" in done.stdout and climb in done.stdout, done.stdout


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of more than one module (iterative: no recursion limit)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
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


def test_the_component_finder_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_deepdives_modules():
    """grimp reads every import statement, those inside functions too."""
    import grimp

    graph = grimp.build_graph("deepdive", cache_dir=None)
    edges = {m: {i for i in graph.find_modules_directly_imported_by(m)} for m in graph.modules}
    assert strongly_connected(edges) == []


def functions(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_modules_and_functions_are_small():
    too_long = []
    for name, path in modules().items():
        text = path.read_text()
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            too_long.append(f"module {name}: {lines} lines")
        for fn in functions(ast.parse(text)):
            length = fn.end_lineno - fn.lineno + 1
            if length > MAX_FUNCTION_LINES:
                too_long.append(f"function {name}.{fn.name}: {length} lines")
    assert too_long == []


def test_few_modules_loose_at_the_top():
    loose = sorted(p.name for p in SRC.glob("*.py"))
    assert len(loose) <= MAX_TOP_MODULES, loose


def test_the_cli_only_assembles_and_dispatches():
    assert len((SRC / "cli.py").read_text().splitlines()) <= 200


def imports_of(tree) -> list[tuple[str, list[str], int]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [a.name for a in node.names], node.lineno))
    return found


def test_argparse_is_read_only_by_the_command_floor():
    readers = [f"{name}:{line}" for name, path in modules().items()
               if not name.startswith(("deepdive.commands", "deepdive.cli"))
               for module, _, line in imports_of(ast.parse(path.read_text())) if module == "argparse"]
    assert readers == []


def test_no_private_name_is_imported_across_modules():
    private = [f"{name}:{line} imports {module}.{n}" for name, path in modules().items()
               for module, names, line in imports_of(ast.parse(path.read_text())) if module.startswith("deepdive")
               for n in names if n.startswith("_") and not n.startswith("__")]
    assert private == []


ENGINE_NAMES = ("torch", "scratch")


def names_an_engine(node) -> bool:
    """``x.engine``, ``x["engine"]``, ``engine.name``, ``engine_name``: an expression holding an engine's name."""
    text = ast.unparse(node)
    return text.endswith((".engine", "['engine']", "engine.name")) or text in ("engine", "engine_name")


def test_no_engine_name_is_tested_outside_the_engines_declarations():
    """Generic code asks ``EngineSpec`` (config/specs.py) or the engine object, never compares its name."""
    allowed = {"deepdive.config.specs", "deepdive.training.engines"}
    tests = []
    for name, path in modules().items():
        if name in allowed or name.startswith("deepdive.scratch"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and len(node.comparators) == 1:
                sides = (node.left, node.comparators[0])
                literal = [s.value for s in sides if isinstance(s, ast.Constant)]
                if literal and literal[0] in ENGINE_NAMES and any(names_an_engine(s) for s in sides):
                    tests.append(f"{name}:{node.lineno} {ast.unparse(node)}")
    assert tests == []


def test_the_engine_name_finder_finds_one():
    node = ast.parse('cfg.engine == "scratch"').body[0].value
    assert names_an_engine(node.left) and node.comparators[0].value in ENGINE_NAMES


def test_the_loop_is_composed_not_subclassed():
    """Data-parallel training is a process group the one loop holds, not a subclass overriding its methods."""
    import deepdive.training.ddp.group  # noqa: F401
    import deepdive.training.ddp.launcher  # noqa: F401
    import deepdive.training.setup  # noqa: F401
    from deepdive.training.loop import Trainer

    assert Trainer.__subclasses__() == []
