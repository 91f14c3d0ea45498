"""The test suite's own layout rules, checked by reading its source with ast: helpers live once in
tests/support, conftest.py files hold only fixtures and pytest hooks, and nothing imports from a
conftest module (pytest loads those itself; importing one runs it twice under two names) or from
another test module."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def python_files() -> list[Path]:
    return sorted(TESTS.rglob("*.py"))


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in the file, relative ones resolved against its package."""
    package = path.relative_to(TESTS.parent).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            yield node.lineno, module
            # `from tests.kv import conftest` names the conftest module as an imported name
            yield from ((node.lineno, f"{module}.{alias.name}") for alias in node.names if is_test_module(alias.name))


def is_test_module(name: str) -> bool:
    """A conftest or test_* module, by the last part of its dotted name."""
    last = name.split(".")[-1]
    return last == "conftest" or last.startswith("test_")


def is_fixture(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if ast.unparse(target) in ("pytest.fixture", "fixture"):
            return True
    return False


def test_no_module_of_the_suite_imports_from_a_conftest_or_test_module() -> None:
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{line}: {module}"
        for path in python_files()
        for line, module in imported_modules(path)
        if is_test_module(module)
    ]
    assert not offenders, "import helpers from tests/support, not from conftest or test modules:\n" + "\n".join(
        offenders
    )


def test_conftest_files_define_only_fixtures_and_hooks() -> None:
    offenders = []
    for path in TESTS.rglob("conftest.py"):
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, ast.ClassDef):
                offenders.append(f"{path.relative_to(TESTS.parent)}:{node.lineno}: class {node.name}")
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not (
                is_fixture(node) or node.name.startswith("pytest_")
            ):
                offenders.append(f"{path.relative_to(TESTS.parent)}:{node.lineno}: def {node.name}")
    assert not offenders, "helpers belong in tests/support:\n" + "\n".join(offenders)


def test_every_module_outside_support_is_a_test_module_or_a_conftest() -> None:
    allowed = {"__init__.py", "conftest.py"}
    strays = [
        str(path.relative_to(TESTS.parent))
        for path in python_files()
        if "support" not in path.relative_to(TESTS).parts[:1]
        and path.name not in allowed
        and not path.name.startswith("test_")
    ]
    assert not strays, "helper modules belong in tests/support:\n" + "\n".join(strays)
