"""What the process benchmarks share: an ``agiqa`` subprocess, its memory (with its worker processes), and where
results go. Linux only (memory is read from ``/proc``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHARED = Path(os.environ.get("AGIQA_SHARED_DATA", ROOT.parent / "shared" / "data"))


def agiqa(*args: object, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen:
    """``agiqa ARGS`` as a subprocess of this Python (its own session, so it can be killed with its workers)."""
    code = "import sys; from agiqa.cli import main; sys.argv = ['agiqa', *sys.argv[1:]]; main()"
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, start_new_session=True, **popen)


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
    return kids


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return _status_kb(pid, "VmRSS")


def rss_mb(pid: int, tree: bool = False) -> float:
    """Memory of ``pid`` in MiB: its resident set; with ``tree``, the proportional set size (PSS) of it and all its
    descendants summed, so that pages forked workers share with their parent are counted once."""
    if not tree:
        return _status_kb(pid, "VmRSS") / 1024
    pids, total = [pid], 0
    while pids:
        current = pids.pop()
        total += _pss_kb(current)
        pids += _children(current)
    return total / 1024


class RssSampler:
    """Samples ``rss_mb(pid, tree)`` every ``period`` seconds in a thread; ``peak`` is the largest seen."""

    def __init__(self, pid: int, period: float = 0.25, tree: bool = False) -> None:
        self.pid, self.period, self.tree, self.peak = pid, period, tree, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid, self.tree))
            self._stop.wait(self.period)


def context() -> dict[str, Any]:
    """When and where a figure was measured (load average included: other jobs slow every phase)."""
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
    }


def conditions(data: dict[str, Any]) -> str:
    """The sentence that says when and under what load ``data`` (with ``context`` and ``quick``) was measured."""
    c = data["context"]
    quick = " — **a --quick run: it checks the script; its counts are too small for figures**" if data["quick"] else ""
    return (
        f"Measured {c['date']} on {c['cpus']} CPUs, load average {c['load_average']} at start, "
        f"{c['load_average_end']} at the end{quick}."
    )


def write_results(name: str, data: dict[str, Any], render: Callable[[dict[str, Any]], str]) -> tuple[Path, Path]:
    """``benchmarks/results/NAME.json`` and ``NAME.md`` (``render(data)``), the load average at the end noted."""
    data["context"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path, md_path = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    json_path.write_text(json.dumps(data, indent=1) + "\n")
    md_path.write_text(render(data))
    return json_path, md_path


def stop(proc: subprocess.Popen, grace: float = 20) -> None:
    """Ask ``proc`` to stop (SIGTERM), then kill it if it has not within ``grace`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(check, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {seconds:g} s")
        time.sleep(0.05)
