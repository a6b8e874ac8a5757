"""What a new user meets before any scoring: the version, the licence, install hints that work from a wheel and
from a checkout."""

from __future__ import annotations

import re
from importlib.metadata import metadata, version
from pathlib import Path

from typer.testing import CliRunner

from agiqa.api import install_hint
from agiqa.cli import app

REPO = Path(__file__).resolve().parents[1]


def test_version_option_prints_the_installed_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"agiqa {version('agiqa')}"


def test_licence_file_is_the_one_pyproject_names() -> None:
    assert metadata("agiqa")["License"] == "Apache-2.0"  # pyproject's `license`
    text = (REPO / "LICENSE").read_text()
    assert text.split()[:3] == ["Apache", "License", "Version"] and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text.splitlines()) > 150


def test_install_hints_name_the_wheel_and_the_checkout_forms() -> None:
    hint = install_hint("serve")
    assert "pip install 'agiqa[serve]'" in hint and "pip install -e '.[serve]'" in hint
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    assert "pip install 'agiqa[serve]'" in text and "pip install -e '.[serve]'" in text
    bare = re.compile(r"pip install (-e )?agiqa\[|pip install -e \.\[")  # unquoted extras break in zsh
    for path in [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "src").rglob("*.py")]:
        assert not bare.search(path.read_text()), f"{path}: quote the extra: pip install 'agiqa[x]' / -e '.[x]'"
