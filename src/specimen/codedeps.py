"""The code each DAG stage runs, derived from the source: `specimen <stage>` executes cli.py and what it
imports (the commands package, less the runners' bodies; params.py), and the closure of the modules
its runner imports.

Snakemake (workflow/rules/common.smk) makes these files each rule's code inputs, so a change to any
of them re-runs the stage; dvc.yaml lists the same files, and tests/test_provenance.py fails, naming
the lines to add or remove, when it drifts from them. Imports are read from the source (at any depth:
the stages import lazily), never by importing it.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = "specimen"
COMMANDS = f"{PACKAGE}.commands"  # a runner per command, each phase's in a module of its own


def stage_code(stage: str, src: Path | None = None) -> list[str]:
    """The package's files that `specimen <stage>` executes, as paths from the project root
    (src/specimen/...), sorted. `src` is the folder holding the package (default: this one's)."""
    src = Path(src) if src is not None else Path(__file__).resolve().parents[1]
    entries = stage_entries(src)
    if stage not in entries:
        raise KeyError(f"no stage {stage!r} in {PACKAGE}/commands/ (stages: {', '.join(sorted(entries))})")
    modules = closure(src, {f"{PACKAGE}.cli"} | entries[stage])
    return sorted(f"{src.name}/{module_path(src, m).relative_to(src).as_posix()}" for m in modules)


@cache
def stage_entries(src: Path) -> dict[str, frozenset[str]]:
    """{stage: the modules its runner imports}, from each function of the commands package decorated
    @stage(name, ...) (the tools, decorated @tool, are no DAG stages)."""
    entries = {}
    for path in sorted(module_path(src, COMMANDS).parent.glob("*.py")):
        module = COMMANDS if path.name == "__init__.py" else f"{COMMANDS}.{path.stem}"
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if _command(node) and _command(node)[0] == "stage":
                entries[_command(node)[1]] = frozenset(imports(src, module, node))
    return entries


def _command(node) -> tuple[str, str] | None:
    """("stage" or "tool", name) for a function of the commands package registered as a command."""
    if isinstance(node, ast.FunctionDef):
        for deco in node.decorator_list:
            if (
                isinstance(deco, ast.Call)
                and getattr(deco.func, "id", None) in ("stage", "tool")
                and deco.args
                and isinstance(deco.args[0], ast.Constant)
            ):
                return deco.func.id, deco.args[0].value
    return None


def closure(src: Path, modules: set[str]) -> set[str]:
    """`modules`, their parent packages and everything they import inside the package, transitively.
    Of the commands package, only what every command runs counts: each runner's imports belong to its stage."""
    seen, todo = set(), list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(parents(name))
        tree = ast.parse(module_path(src, name).read_text(encoding="utf-8"))
        if name == COMMANDS or name.startswith(f"{COMMANDS}."):
            tree = ast.Module(body=[n for n in tree.body if not _command(n)], type_ignores=[])
        todo.extend(imports(src, name, tree))
    return seen


def imports(src: Path, module: str, tree: ast.AST) -> set[str]:
    """The package's modules that `tree` (code of `module`) imports, anywhere in it."""
    found = set()
    is_package = module_path(src, module).name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package, one level up per extra dot
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return {name for name in found if name.split(".")[0] == PACKAGE and module_path(src, name, must=False)}


def parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def module_path(src: Path, module: str, must: bool = True) -> Path | None:
    """The file of a module of the package: a/b.py, or a/b/__init__.py for a sub-package."""
    base = src.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    if must:
        raise FileNotFoundError(f"no module {module} under {src}")
    return None
