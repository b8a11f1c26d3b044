"""The module map's rules that code can check (ARCHITECTURE.md): no import cycle anywhere in the
package, counting imports inside functions and under TYPE_CHECKING; article.py imports no other
input module; the brief's renderers import only its entries; no function is over 60 lines; only
runs.py spells the run directory's file names."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pipeline"
INPUTS = {"pipeline.sources", "pipeline.web", "pipeline.fetch"}


def module_names(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its __init__.py)."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `name` imports anywhere in its file: at the top, inside functions,
    under TYPE_CHECKING. `from . import x` names module x when x is one, else the package itself."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for imported in targets:
            target = imported
            while target and target not in modules:  # pipeline.llm.Usage → pipeline.llm
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (its first module repeated at the end), or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for target in sorted(graph.get(node, ())):
            cycle = visit(target, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_the_cycle_check_sees_cycles_and_imports_inside_functions() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    graph = import_graph()
    assert "pipeline.api" in graph["pipeline.cli.run"], "cli imports api only inside its commands"
    assert "pipeline.brief.html" in graph["pipeline.brief.model"], "Brief.to_html imports the page renderer lazily"
    assert {"pipeline.brief", "pipeline.brief.entries", "pipeline.sources"} <= set(graph)


def test_article_imports_no_other_input_module() -> None:
    assert not import_graph()["pipeline.article"] & INPUTS


def test_the_brief_renderers_import_only_the_entries_of_the_brief() -> None:
    graph = import_graph()
    for renderer in ("pipeline.brief.markdown", "pipeline.brief.html", "pipeline.brief.docx"):
        own = {name for name in graph[renderer] if name.startswith("pipeline.brief")}
        assert own == {"pipeline.brief.entries"}, (renderer, own)


def test_no_function_in_the_package_is_over_60_lines() -> None:
    """Long functions hide more than one concern: split them (decorators are not counted)."""
    long = [
        f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and (node.end_lineno or node.lineno) - node.lineno + 1 > 60
    ]
    assert long == []


# The run directory's files: runs.py alone spells them (others use its names and RunDir's helpers);
# batch_record.py spells the batch record's own manifest.json.
RUN_FILES = {"article.txt", "source.html", "manifest.json", "calls.jsonl", "brief.json", "brief.md", "brief.html"}
MAY_SPELL = {"runs.py": RUN_FILES, "batch_record.py": {"manifest.json"}}


def layout_literals(source: str, allowed: set[str] = frozenset()) -> list[tuple[int, str]]:  # type: ignore[assignment]
    """String literals (f-string parts included) that are exactly a run-directory file name: the
    code building a path into a run by hand. Prose that mentions a file is not such a literal."""
    return [
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and node.value in RUN_FILES - allowed
    ]


def test_only_runs_py_spells_the_run_directory_layout() -> None:
    found = [
        f"{path.relative_to(PACKAGE)}:{line} {name!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, name in layout_literals(
            path.read_text(encoding="utf-8"), MAY_SPELL.get(path.relative_to(PACKAGE).as_posix(), set())
        )
    ]
    assert found == [], "use runs.py's names and RunDir helpers (brief_path, read_brief, article_text...)"


def test_the_layout_check_sees_a_path_built_by_hand() -> None:
    code = 'def f(run):\n    return run.path / "brief.json", f"{run.path / \'article.txt\'}", "see brief.json"\n'
    assert layout_literals(code) == [(2, "brief.json"), (2, "article.txt")]
