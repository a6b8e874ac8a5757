"""README's examples run verbatim: every ``bash`` and ``python`` block, in a fresh folder holding ``examples/`` and
beside ``../shared/data`` (as a clone of the repository is), unless marked ``<!-- not-run: reason -->``.

The quickstart is such a marked block: ``.ci/run`` runs it verbatim on a fresh clone and ends with the test
command, which is the other one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _readme import LANGUAGES, README, blocks, section_block
from conftest import SHARED_DATA

REPO = README.parent
RUNNABLE = [b for b in blocks() if b.language in LANGUAGES]


def test_readme_has_examples_and_every_skip_says_why() -> None:
    assert len([b for b in RUNNABLE if b.not_run is None]) >= 8
    for block in RUNNABLE:
        assert block.not_run is None or len(block.not_run) > 10, f"README.md:{block.line}: say why it is not run"
    assert [b.section for b in RUNNABLE[:2]] == ["Quickstart", "Quickstart"] and all(b.not_run for b in RUNNABLE[:2])


def test_ci_runs_the_quickstart_verbatim_and_ends_with_the_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert 'bash -euo pipefail -c "$(python3 tests/_readme.py Quickstart 0)"' in ci
    assert ci[-1] == section_block("Quickstart", 1).code.strip()
    assert "agiqa score examples/images" in section_block("Quickstart", 0).code


def test_not_run_markers_are_read() -> None:
    text = "## A\n\n<!-- not-run: it starts a server -->\n```bash\nagiqa serve\n```\n\n```python\nprint(1)\n```\n"
    first, second = blocks(text)
    assert (first.not_run, first.line, first.code) == ("it starts a server", 4, "agiqa serve\n")
    assert second.not_run is None and second.language == "python"


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """What a block sees: a folder like a fresh clone (``examples/``), ``../shared/data``, a private cache."""
    root = tmp_path_factory.mktemp("readme")
    if SHARED_DATA.exists():
        (root / "shared").mkdir()
        (root / "shared" / "data").symlink_to(SHARED_DATA.resolve())
    bin_dir = str(Path(sys.executable).parent)  # where the `agiqa` console script is
    env = {**os.environ, "AGIQA_CACHE_DIR": str(root / "cache"), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("COLUMNS", None)
    return root, env


@pytest.mark.slow
@pytest.mark.parametrize("block", RUNNABLE, ids=[f"README.md:{b.line}" for b in RUNNABLE])
def test_readme_block_runs_verbatim(block, clone: tuple[Path, dict[str, str]]) -> None:
    if block.not_run:
        pytest.skip(f"marked not-run: {block.not_run}")
    root, env = clone
    if "../shared/data" in block.code and not SHARED_DATA.exists():
        pytest.skip(f"needs ../shared/data, absent here ({SHARED_DATA})")
    work = root / f"clone-{block.line}"
    shutil.copytree(REPO / "examples", work / "examples")
    if block.language == "python":
        command = [sys.executable, "-c", block.code]
    else:
        command = ["bash", "-euo", "pipefail", "-c", block.code]
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, (
        f"README.md:{block.line} exited {done.returncode}\n--- block\n{block.code}--- stdout\n{done.stdout[-4000:]}"
        f"\n--- stderr\n{done.stderr[-4000:]}"
    )
