"""The package's layout as a contract: what each subpackage may import, no import cycles (function-level imports
included), module and function sizes, self-describing folders, and a cheap ``import hf_dr``."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hf_dr"
MAX_MODULE_LINES = 400  # docstring examples excluded
MAX_SCRIPT_LINES = 200
MAX_FUNCTION_LINES = 60  # code lines, docstring excluded
# Subpackage (or top-level module) -> the hf_dr parts it may import. The data's path: augment -> data -> generate ->
# hub; train builds on data and generate (teachers, views); demo on everything; cli on everything.
LEAVES = {"errors", "files"}
ALLOWED = {
    "errors": set(),
    "files": {"errors"},
    "augment": LEAVES,
    "data": LEAVES | {"augment"},
    "models": LEAVES | {"augment", "data"},  # teachers, students, weights, checkpoints, the small networks
    "networks": {"models"},  # deprecated alias of hf_dr.models.networks (model cards of 0.2 import it)
    "generate": LEAVES | {"augment", "data", "models"},
    "hub": LEAVES | {"augment", "data", "models", "generate"},
    "train": LEAVES | {"augment", "data", "models", "generate"},
    "demo": LEAVES | {"augment", "data", "models", "generate", "hub", "train"},
    "builders": LEAVES | {"generate"},  # hf_dr.builders (the repository's builders/): recipes
    "cli": LEAVES | {"augment", "data", "models", "generate", "hub", "train", "demo", "builders"},
    "__main__": {"cli"},  # python -m hf_dr
}
HEAVY = ("transformers", "timm", "matplotlib")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path) -> set[str]:
    """hf_dr modules imported anywhere in ``path`` (function bodies included, ``if TYPE_CHECKING:`` excluded)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "hf_dr")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hf_dr":
            for alias in node.names:  # `from hf_dr.x import y` imports the submodule y when there is one
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _part(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_every_subpackage_imports_only_what_its_docstring_allows() -> None:
    """Each subpackage imports only the parts below it on the data's path (see ALLOWED)."""
    wrong = []
    for module, imported in GRAPH.items():
        part = _part(module)
        if not part:  # hf_dr/__init__.py: lazy exports only
            assert imported == set(), f"hf_dr/__init__.py imports {sorted(imported)} eagerly"
            continue
        for target in imported - {"hf_dr"}:  # the root is lazy-only (__version__): importing it loads nothing
            if _part(target) not in ALLOWED[part] | {part}:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_no_import_cycle() -> None:
    """No cycle among hf_dr modules, counting imports inside functions (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in GRAPH.get(node, ()):
            if target not in GRAPH:
                continue
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in GRAPH:
        if module not in index:
            connect(module)
    assert cycles == []


def test_subpackages_describe_themselves() -> None:
    """Every folder's ``__init__`` says what lives there and what it may import."""
    for module, path in MODULES.items():
        if path.name == "__init__.py" and module != "hf_dr" and module.count(".") == 1:
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            assert len(doc) > 80 and "import" in doc.lower(), f"{path} needs a docstring: contents and imports"


def _example_line_count(source: str) -> int:
    """Lines of ``source``'s docstring examples (``>>>``/``...`` lines and their expected output): every public
    name must have one (:func:`test_public_name_has_an_example_that_runs`), so they do not count towards a module's
    size, as docstrings do not towards a function's."""
    import doctest

    parser, count = doctest.DocTestParser(), 0
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            for example in parser.get_examples(ast.get_docstring(node, clean=True) or ""):
                count += len(example.source.splitlines()) + len(example.want.splitlines())
    return count


def test_modules_and_functions_stay_small() -> None:
    too_long = [f"{p.relative_to(ROOT)}: {n} lines" for p in MODULES.values()
                if (n := len((text := p.read_text()).splitlines()) - _example_line_count(text)) > MAX_MODULE_LINES]
    too_long += [f"{p.relative_to(ROOT)}: {n} lines" for p in sorted((ROOT / "scripts").glob("*.py"))
                 if (n := len(p.read_text().splitlines())) > MAX_SCRIPT_LINES]
    for path in [*MODULES.values(), *sorted((ROOT / "scripts").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                first = node.body[0]
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                        first.value.value, str):
                    lines -= first.end_lineno - first.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}(): {lines} lines")
    assert too_long == []


def test_import_hf_dr_is_cheap() -> None:
    """``import hf_dr`` loads none of transformers, timm, matplotlib; its public names are importable on use."""
    code = (f"import sys, hf_dr; heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})); "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("name", sorted(__import__("hf_dr").__all__))
def test_public_name_resolves(name: str) -> None:
    """Every name of the public API resolves and has a docstring."""
    import hf_dr

    value = getattr(hf_dr, name)
    assert name == "__version__" or (value.__doc__ or "").strip(), f"hf_dr.{name} has no docstring"


def test_the_declared_packages_are_the_tree() -> None:
    """pyproject.toml lists the packages (builders/ and cards/ are mapped into hf_dr): a new subpackage that is not
    listed would be missing from the wheel."""
    import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    tree = {".".join(p.parent.relative_to(ROOT).parts) for p in PACKAGE.rglob("__init__.py")}
    assert set(setuptools["packages"]) == tree | {"hf_dr.builders", "hf_dr.cards"}
    assert setuptools["package-dir"] == {"hf_dr": "hf_dr", "hf_dr.builders": "builders", "hf_dr.cards": "cards"}


def test_python_m_hf_dr_is_the_cli() -> None:
    for module in ("hf_dr", "hf_dr.cli"):
        out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=True,
                             cwd=ROOT)
        assert "usage: hf-dr" in out.stdout and "reinforce" in out.stdout


# A run's column roles and their defaults are read through hf_dr.data.run_columns.RunColumns: a module that writes a
# fallback of its own (``columns.get("key") or KEY_COLUMN``) is a second record of the default, which drifts.
COLUMN_FALLBACKS = re.compile(
    r"columns\.get\("  # a run's columns as an untyped dict
    r"|\b(?:or|else) (?:KEY_COLUMN|REINFORCEMENTS_COLUMN|IMAGE_COLUMN|LABEL_COLUMN)\b"
    r"|\b(?:or|else) \"(?:image|label|key|reinforcements|content|column)\""
    r"|\.get\(\"(?:image|label|key|key_source|reinforcements)\", \""
)
COLUMNS_MODULE = PACKAGE / "data" / "run_columns.py"


def test_no_module_re_derives_a_column_default() -> None:
    """Every column default and the key-source rule live in ``hf_dr/data/run_columns.py`` (``RunColumns``)."""
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in MODULES.values() if path != COLUMNS_MODULE
             for number, line in enumerate(path.read_text().splitlines(), 1) if COLUMN_FALLBACKS.search(line)]
    assert found == [], "re-derived column defaults (use RunColumns):\n" + "\n".join(found)

UNDOCUMENTED_BY_EXAMPLE = {"__version__", "HfDrError"}  # a string; the base class that only names a family


def _example_lines(doc: str) -> list[str]:
    """The source lines of a docstring's examples: ``>>>`` lines and their ``...`` continuations."""
    lines, inside = [], False
    for line in doc.splitlines():
        text = line.strip()
        if text.startswith(">>>"):
            inside = True
            lines.append(text)
        elif inside and text.startswith("..."):
            lines.append(text)
        else:
            inside = False
    return lines


@pytest.mark.parametrize("name", sorted(set(__import__("hf_dr").__all__) - UNDOCUMENTED_BY_EXAMPLE))
def test_public_name_has_an_example_that_runs(name: str) -> None:
    """Every public name's own docstring has a ``>>>`` example, and no line of it is skipped: the examples run as
    doctests (pyproject's ``--doctest-modules`` over ``hf_dr``), so ``help(hf_dr.X)`` shows code that works."""
    import doctest
    import inspect

    import hf_dr

    value = getattr(hf_dr, name)
    lines = _example_lines(inspect.getdoc(value) or "")
    assert lines, f"hf_dr.{name}'s docstring has no '>>>' example"
    skipped = [line for line in lines if "+SKIP" in line.replace(" ", "")]
    assert skipped == [], f"hf_dr.{name}'s example skips lines, so it never runs: {skipped}"
    module = inspect.getmodule(value)  # pytest's doctest collector finds examples as DocTestFinder does
    collected = {test.name for test in doctest.DocTestFinder().find(module) if test.examples}
    assert f"{module.__name__}.{value.__qualname__}" in collected and Path(module.__file__).is_relative_to(PACKAGE)


# Library modules with no tests/<subpackage>/test_<module>.py, and why. hf_dr/cli/ is tested by tests/cli/ and
# tests/test_cli.py as a whole (one CLI), so its modules are not listed.
UNTESTED_BY_NAME = {
    "hf_dr/__main__.py": "three lines; `python -m hf_dr` runs in test_python_m_hf_dr_is_the_cli",
    "hf_dr/errors.py": "the error classes only; every test that expects an error asserts them",
    "hf_dr/augment/ops/base.py": "tests/augment/test_ops.py (one class per op, through the policies)",
    "hf_dr/augment/ops/crop.py": "tests/augment/test_ops.py",
    "hf_dr/augment/ops/erasing.py": "tests/augment/test_ops.py",
    "hf_dr/augment/ops/mixing.py": "tests/augment/test_ops.py",
    "hf_dr/augment/ops/randaugment.py": "tests/augment/test_ops.py",
    "hf_dr/data/parquet_rows.py": "tests/data/test_streaming.py (the rows a stream reads from Parquet)",
    "hf_dr/data/view_options.py": "tests/data/test_replay.py (the replay's size, normalisation and output)",
    "hf_dr/demo/config.py": "tests/demo/test_run.py and test_study.py (the demo and study configs)",
    "hf_dr/demo/data.py": "tests/demo/test_run.py (the demo end to end on its data)",
    "hf_dr/demo/study_report.py": "tests/demo/test_study.py (every study's rows)",
    "hf_dr/generate/lock.py": "tests/generate/test_ownership.py (runs locked against each other)",
    "hf_dr/generate/parquet.py": "tests/hub/test_packing.py (the Parquet files packed for a push)",
    "hf_dr/generate/builder.py": "tests/test_builders.py (the builders' recipes)",
    "hf_dr/generate/resume.py": "tests/generate/test_run.py, its resume section (another source refused)",
    "hf_dr/generate/row_groups.py": "tests/generate/test_loading.py (open_run_records reads by row group)",
    "hf_dr/hub/build.py": "tests/hub/test_packing.py and test_push_load.py (the files a push builds)",
    "hf_dr/hub/card_sections.py": "tests/hub/test_card.py (the card's sections)",
    "hf_dr/hub/push.py": "tests/hub/test_push_load.py and test_push_faults.py",
    "hf_dr/hub/upload.py": "tests/hub/test_push_faults.py (retries and failures of uploads)",
    "hf_dr/train/inputs.py": "tests/data/test_key_sources.py, tests/generate/test_images.py, tests/test_scripts.py",
    "hf_dr/networks.py": "the deprecated alias of hf_dr.models.networks: tests/models/test_networks.py",
    "hf_dr/augment/defaults.py": "constants only (the default policies), read by every test of reinforce",
    "hf_dr/hub/pushed_run.py": "tests/hub/test_verify_hub.py (a pushed run read back to verify it)",
    "hf_dr/models/members.py": "tests/train/test_finetune.py (the members fine-tuning trains)",
    "hf_dr/models/weights.py": "tests/models/test_teacher.py and test_hub_weights.py (a member's weights)",
    "hf_dr/generate/opening.py": "tests/hub/test_opening.py (local runs and pushes opened through it)",
    "hf_dr/hub/repo_meta.py": "tests/hub/test_load.py and test_opening.py (hf_dr.json read at one commit)",
    "hf_dr/generate/run_inspection.py": "tests/generate/test_verify.py and tests/cli (hf-dr verify and show)",
}


def _test_file(path: Path) -> Path:
    parts = path.relative_to(PACKAGE).parts
    return ROOT / "tests" / Path(*parts[:-1]) / f"test_{parts[-1]}"


def test_every_library_module_has_a_test_file_of_its_name() -> None:
    """``hf_dr/a/b.py`` is tested in ``tests/a/test_b.py``, or listed in UNTESTED_BY_NAME with the reason (and the
    file that tests it); the list holds only modules that exist and still have no such file."""
    modules = [p for p in MODULES.values() if p.name != "__init__.py" and "cli" not in p.relative_to(PACKAGE).parts]
    missing = {str(p.relative_to(ROOT)) for p in modules if not _test_file(p).exists()}
    assert sorted(missing - set(UNTESTED_BY_NAME)) == [], "add a test file, or list the module with the reason"
    assert sorted(set(UNTESTED_BY_NAME) - missing) == [], "these now have a test file (or are gone): unlist them"
