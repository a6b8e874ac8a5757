"""``agiqa`` in a separate process (so a test can kill it), after a prelude that registers the test's tiny encoder
and method."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def cli_process(*args: object, env: dict[str, str], prelude: str = "import scoring_fixtures") -> subprocess.Popen:
    """Start ``agiqa ARGS`` in its own session (``os.killpg(proc.pid, ...)`` reaches its workers too).

    Args:
        *args: Command-line arguments after ``agiqa``.
        env: Environment of the process.
        prelude: Python run first, with the tests folder importable (it registers what the command needs).
    """
    script = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r}); {prelude}; "
        "from agiqa.cli import main; sys.argv = ['agiqa', *sys.argv[1:]]; main()"
    )
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
