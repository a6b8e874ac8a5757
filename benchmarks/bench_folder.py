"""``agiqa score`` over a folder of 20,000 images: time to the first rows on disk, images/s, peak memory.

Usage (from the repository root)::

    python benchmarks/bench_folder.py              # 20,000 images
    python benchmarks/bench_folder.py --quick      # 300 images, to check the script (figures meaningless)
    python benchmarks/bench_folder.py --stop-after 600   # 20,000 images listed, interrupted (Ctrl-C) after 10 min

The folder is made in a temporary directory outside the repository from hard links (copies where links are not
possible) of the real AGIQA-3K images, cycled, 500 per sub-folder; it is removed at the end. The run is the real
command, ``agiqa score FOLDER --prompt ... --out OUT.csv``, in a subprocess: the listing is timed in this process
with ``find_images``; the first rows are the first chunk file in ``OUT.csv.partial``; memory is the proportional
set size (PSS: pages shared after the fork count once) of the command and its decoding workers together, sampled
every 0.25 s. Writes ``benchmarks/results/folder_score.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from _procs import SHARED, RssSampler, agiqa, conditions, context, rss_mb, write_results

from agiqa.data.files import find_images

PROMPT = "a photo of a red apple on a wooden table"


def make_folder(root: Path, n: int) -> tuple[Path, str]:
    """``n`` images under ``root/images`` linked (or copied) from AGIQA-3K; returns the folder and how."""
    sources = sorted((SHARED / "agiqa3k" / "images").glob("*.jpg"))
    if not sources:
        raise SystemExit(f"no AGIQA-3K images under {SHARED / 'agiqa3k' / 'images'} (set AGIQA_SHARED_DATA)")
    folder, how = root / "images", "hard links"
    for k in range(n):
        sub = folder / f"part-{k // 500:03d}"
        if k % 500 == 0:
            sub.mkdir(parents=True)
        src, dst = sources[k % len(sources)], sub / f"{k:06d}_{sources[k % len(sources)].name}"
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
            how = "copies"
    return folder, how


def _partial_rows(out: Path) -> int:
    """Rows in the chunks of an unfinished run (``OUT.partial/chunk-*.jsonl``, one JSON object per line)."""
    return sum(sum(1 for _ in f.open()) for f in (out.parent / (out.name + ".partial")).glob("chunk-*.jsonl"))


def run(folder: Path, out: Path, n: int, extra: list[str], stop_after: float | None = None) -> dict[str, Any]:
    """Run ``agiqa score`` over ``folder``; with ``stop_after`` it is interrupted (SIGINT) after that many seconds."""
    start = time.monotonic()
    proc = agiqa(
        "score",
        folder,
        "--prompt",
        PROMPT,
        "--out",
        out,
        *extra,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        # a shell's background job inherits SIGINT ignored, and Python then never raises KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    first = partial = None
    timeline: list[tuple[float, float]] = []  # (seconds, PSS MiB) every 30 s: flat memory shows here
    interrupted = False
    with RssSampler(proc.pid, tree=True) as sampler:
        while proc.poll() is None:
            now = time.monotonic() - start
            if first is None and any((out.parent / (out.name + ".partial")).glob("chunk-*.jsonl")):
                first, partial = now, rss_mb(proc.pid, tree=True)
            if now >= 30 * (len(timeline) + 1):
                timeline.append((round(now), round(rss_mb(proc.pid, tree=True), 1)))
            if stop_after is not None and now >= stop_after and not interrupted:
                proc.send_signal(signal.SIGINT)  # what Ctrl-C does: the run stops and keeps OUT.partial
                interrupted = True
            time.sleep(0.05)
    seconds = time.monotonic() - start
    output = proc.stdout.read()
    rows = sum(1 for _ in out.open()) - 1 if out.is_file() else _partial_rows(out)
    return {
        "exit_code": proc.returncode,
        "interrupted_after_s": stop_after if interrupted else None,
        "rows": rows,
        "seconds": round(seconds, 1),
        "first_rows_after_s": None if first is None else round(first, 1),
        "images_per_s": round(rows / seconds, 2),
        "images_per_s_after_first_rows": None if first is None else round(rows / max(1e-9, seconds - first), 2),
        "pss_timeline_mb": timeline,
        "peak_pss_mb_with_workers": round(sampler.peak, 1),
        "pss_mb_at_first_rows": None if partial is None else round(partial, 1),
        "summary": output.strip().splitlines()[-1] if output.strip() else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="images in the folder")
    parser.add_argument("--quick", action="store_true", help="300 images: checks the script, not the figures")
    parser.add_argument("--score-args", default="", help="extra `agiqa score` options, e.g. '--workers 1'")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--stop-after", type=float, default=None, metavar="S", help="interrupt the run (SIGINT) after S seconds"
    )
    args = parser.parse_args()
    n = 300 if args.quick else args.n
    root = Path(tempfile.mkdtemp(prefix="agiqa-folder-"))
    try:
        folder, how = make_folder(root, n)
        start = time.perf_counter()
        listed = find_images([folder])
        listing = time.perf_counter() - start
        assert len(listed) == n
        result = {
            "context": context(),
            "images": n,
            "made_from": how,
            "quick": args.quick,
            "listing_seconds": round(listing, 3),
            "command": f"agiqa score FOLDER --prompt '{PROMPT}' --out OUT.csv {args.score_args}".strip(),
        }
        result.update(run(folder, root / "out.csv", n, args.score_args.split(), args.stop_after))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    paths = write_results("folder_score", result, _markdown)
    print(result, "\nwrote", *paths)


def _markdown(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"# `agiqa score` over a folder of {r['images']:,} images",
            "",
            conditions(r),
            f"Folder: {r['images']:,} AGIQA-3K JPEGs ({r['made_from']}), 500 per sub-folder.",
            f"Command: `{r['command']}`.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| listing (`find_images`) | {r['listing_seconds']} s |",
            f"| first rows on disk (`OUT.partial/chunk-000000`) | {r['first_rows_after_s']} s after start |",
            f"| whole run | {r['seconds']} s, exit code {r['exit_code']}, {r['rows']:,} rows |"
            if not r.get("interrupted_after_s")
            else f"| run, interrupted (SIGINT) after {r['interrupted_after_s']} s | {r['seconds']} s, exit code "
            f"{r['exit_code']}, {r['rows']:,} of {r['images']:,} rows in `OUT.partial` |",
            f"| images/s (rows / run time; after the first rows) | {r['images_per_s']}; "
            f"{r['images_per_s_after_first_rows']} |",
            f"| peak memory (PSS), command + decoding workers | {r['peak_pss_mb_with_workers']} MiB "
            f"(at the first rows: {r['pss_mb_at_first_rows']} MiB) |",
            "| PSS every 30 s (s: MiB) | "
            + (", ".join(f"{t}: {m}" for t, m in r.get("pss_timeline_mb", [])) or "-")
            + " |",
            "",
            f"Summary line: `{r['summary']}`",
            "",
        ]
    )


if __name__ == "__main__":
    main()
