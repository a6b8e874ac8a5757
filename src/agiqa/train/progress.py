"""Progress of long one-off work (encoding a dataset's features): a bar on a terminal, log lines elsewhere.

On a terminal (stderr) a rich bar shows done/total, the rate and the time left (from the rate so far). Anywhere
else (a log file, CI, a pipe) a line goes to stderr when the work starts, every ``$AGIQA_PROGRESS_SECONDS`` seconds
(default 30) while it runs, and when it ends::

    encoding images (orig): 2386 to encode, 0 found in the feature cache (/home/me/.cache/agiqa/features)
    encoding images (orig): 120/2386 (5%), 2.1/s, about 18 min 00 s left
    encoding images (orig): 2386/2386 done in 18 min 57 s (2.1/s)
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

INTERVAL_ENV = "AGIQA_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 30.0


def duration(seconds: float) -> str:
    """``42 s``, ``2 min 50 s``, ``1 h 05 min``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        minutes, secs = divmod(round(seconds), 60)
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


class WorkProgress:
    """Progress of one piece of work whose size is known when it starts (``start``), advanced in steps.

    Args:
        label: What is being done (``encoding images (orig)``).
        console: Where a terminal bar is drawn (default: stderr); log lines are written when it is not a terminal.
        stream: Where log lines go (default: stderr).
        interval: Seconds between log lines (default ``$AGIQA_PROGRESS_SECONDS`` or 30).
        clock: Monotonic clock (tests pass their own).
    """

    def __init__(
        self,
        label: str,
        console: Console | None = None,
        stream: TextIO | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.console = console or Console(stderr=True)
        self.stream = stream
        self.interval = float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL)) if interval is None else interval
        self.clock = clock
        self.total = self.done = 0
        self._bar: Progress | None = None
        self._started = self._last = 0.0

    def _line(self, text: str) -> None:
        print(f"{self.label}: {text}", file=self.stream or sys.stderr, flush=True)

    def start(self, total: int, note: str = "") -> None:
        """The work is ``total`` steps (``note``: e.g. how many were found in a cache)."""
        self.total, self.done = total, 0
        self._started = self._last = self.clock()
        if total <= 0:
            return
        if self.console.is_terminal:
            self._bar = Progress(
                TextColumn(f"[bold]{self.label}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                console=self.console,
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=total, rate="")
            if note:
                self._bar.console.print(f"{self.label}: {note}", highlight=False)
        else:
            self._line(f"{total} to do" + (f", {note}" if note else ""))

    def advance(self, n: int) -> None:
        """``n`` more steps done."""
        self.done += n
        now = self.clock()
        rate = self.done / (now - self._started) if now > self._started else 0.0
        left = f", about {duration((self.total - self.done) / rate)} left" if rate else ""
        if self._bar is not None:
            self._bar.update(self._task, advance=n, rate=f"{rate:.1f}/s{left}" if rate else "")
        elif self.total and now - self._last >= self.interval and self.done < self.total:
            self._last = now
            self._line(f"{self.done}/{self.total} ({self.done / self.total:.0%}), {rate:.1f}/s{left}")

    def close(self) -> None:
        """The work ended (a last line in a log)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif self.total and self.done:
            spent = self.clock() - self._started
            rate = f" ({self.done / spent:.1f}/s)" if spent > 0 else ""
            self._line(f"{self.done}/{self.total} done in {duration(spent)}{rate}")

    def __enter__(self) -> WorkProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
