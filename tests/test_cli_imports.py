"""The command line calls the public API only: its modules import ``agiqa.api`` and each other, no other module."""

from __future__ import annotations

import ast
from pathlib import Path

import agiqa.cli

CLI = Path(agiqa.cli.__file__).parent


def agiqa_imports(path: Path) -> set[str]:
    """Every ``agiqa...`` module a file imports (``from agiqa import api`` counts as ``agiqa.api``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "agiqa":
                found |= {f"agiqa.{a.name}" for a in node.names}
            else:
                found.add(node.module)
    return {m for m in found if m == "agiqa" or m.startswith("agiqa.")}


def test_cli_modules_import_only_the_api_and_each_other() -> None:
    files = sorted(CLI.glob("*.py"))
    assert len(files) >= 8, files
    for path in files:
        outside = {m for m in agiqa_imports(path) if m != "agiqa.api" and not m.startswith("agiqa.cli")}
        assert not outside, f"{path.name} imports {sorted(outside)}; go through agiqa.api"


def test_every_api_name_resolves() -> None:
    from agiqa import api

    for name in api.__all__:
        assert getattr(api, name) is not None, name
