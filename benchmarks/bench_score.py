"""Scoring throughput on real AGIQA-3K images: end-to-end pipeline vs model-forward-only vs a naive loop.

Usage (from the repository root)::

    python benchmarks/bench_score.py                 # N=400 images, the default model
    python benchmarks/bench_score.py --n 100 --model tsp-mgs-lite

Writes ``benchmarks/results/score_throughput.{json,md}``. Three rates are measured in the same run, on the same
images and model, after a warm-up:

* **end-to-end**: ``agiqa.pipeline.resumable.score_to_file`` as ``agiqa score`` runs it: decode + preprocess in worker
  processes, batched model calls, chunked atomic output to a csv file.
* **forward only**: the same batched model calls (image tower, text tower once per unique prompt of a batch, head)
  on tensors decoded and preprocessed beforehand; the ceiling the pipeline can reach.
* **naive loop**: one image at a time: decode, preprocess, ``model(pixels, [prompt])`` under ``torch.no_grad``,
  the way several popular scorers are written.

Peak memory is the peak resident set size (``getrusage``) of this process, read right after the end-to-end phase
(it includes loading the model), and of the worker processes. Other jobs on the machine slow every phase; the
load average before and after is recorded so that figures from a busy machine can be recognised.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch

from agiqa.api import DEFAULT_MODEL, load
from agiqa.data.images import load_image
from agiqa.pipeline.engine import default_workers, score_batch
from agiqa.pipeline.resumable import score_to_file

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("AGIQA_SHARED_DATA", ROOT.parent / "shared" / "data")) / "agiqa3k"


def _rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def _forward_only(model, pixels: torch.Tensor, prompts: list[str], batch_size: int) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(prompts), batch_size):
            score_batch(model, pixels[s : s + batch_size], prompts[s : s + batch_size])
    return time.perf_counter() - start


def _naive(model, paths: list[Path], prompts: list[str]) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        for path, prompt in zip(paths, prompts, strict=True):
            pixels = model.preprocess(load_image(path)).unsqueeze(0)
            model(pixels, [prompt])
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=400, help="images to score")
    parser.add_argument("--naive-n", type=int, default=None, help="images for the naive loop (default: --n)")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with data.csv and images/")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)

    if not (args.data / "data.csv").is_file():
        print(f"skipped: AGIQA-3K not found at {args.data} (set AGIQA_SHARED_DATA or pass --data)")
        return 0
    load_before = os.getloadavg()
    labels = pd.read_csv(args.data / "data.csv").head(args.n)
    paths = [args.data / "images" / name for name in labels["name"]]
    prompts = labels["prompt"].astype(str).tolist()
    n = len(paths)

    t0 = time.perf_counter()
    scorer = load(args.model, allow_untrained=True)  # throughput does not depend on whether the heads are trained
    load_s = time.perf_counter() - t0
    model = scorer.model
    warm = min(n, 2 * args.batch_size)
    scorer.score(paths[:warm], prompts[:warm], batch_size=args.batch_size)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = score_to_file(
            model, paths, prompts, Path(tmp) / "s.csv", batch_size=args.batch_size, workers=args.workers
        )
        e2e_s = time.perf_counter() - t0
    rss_main, rss_workers = _rss_mb(resource.RUSAGE_SELF), _rss_mb(resource.RUSAGE_CHILDREN)

    pixels = torch.stack([scorer.preprocess(p) for p in paths])
    fwd_s = _forward_only(model, pixels, prompts, args.batch_size)
    del pixels
    naive_n = min(n, args.naive_n or n)
    naive_s = _naive(model, paths[:naive_n], prompts[:naive_n])
    load_after = os.getloadavg()

    e2e, fwd, naive = n / e2e_s, n / fwd_s, naive_n / naive_s
    result = {
        "model": scorer.name,
        "n_images": n,
        "n_failed": summary.failed,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "model_load_s": round(load_s, 2),
        "end_to_end_images_per_s": round(e2e, 2),
        "forward_only_images_per_s": round(fwd, 2),
        "naive_loop_images_per_s": round(naive, 2),
        "naive_loop_n_images": naive_n,
        "ratio_end_to_end_over_forward_only": round(e2e / fwd, 3),
        "ratio_end_to_end_over_naive": round(e2e / naive, 3),
        "peak_rss_main_mb": round(rss_main, 1),
        "peak_rss_workers_mb": round(rss_workers, 1),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "python": sys.version.split()[0],
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after],
        },
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "score_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out_dir / "score_throughput.md").write_text(_markdown(result))
    print(_markdown(result))
    return 0


def _markdown(r: dict) -> str:
    m = r["machine"]
    return f"""# Scoring throughput ({r["model"]}, {r["n_images"]} AGIQA-3K images, batch {r["batch_size"]})

Measured by `benchmarks/bench_score.py` on {r["date"]}: {m["cpu_count"]} CPU cores ({m["processor"]}), torch
{m["torch"]} with {m["torch_threads"]} threads, {r["workers"]} decoding worker(s). Load average before / after:
{m["loadavg_before"][0]} / {m["loadavg_after"][0]} (other jobs were sharing the machine when this is above ~0.5).

| path | images/s |
| --- | ---: |
| end-to-end (`agiqa score` pipeline: parallel decode, batches, chunked csv) | {r["end_to_end_images_per_s"]} |
| model forward only (pre-decoded tensors, same batches) | {r["forward_only_images_per_s"]} |
| naive loop, one image at a time ({r["naive_loop_n_images"]} images) | {r["naive_loop_images_per_s"]} |

- end-to-end / forward-only: **{r["ratio_end_to_end_over_forward_only"]}** (goal >= 0.8)
- end-to-end / naive loop: **{r["ratio_end_to_end_over_naive"]}**
- peak RSS: {r["peak_rss_main_mb"]} MB main process (model included), {r["peak_rss_workers_mb"]} MB largest worker
- model load: {r["model_load_s"]} s; failed items: {r["n_failed"]}
"""


if __name__ == "__main__":
    sys.exit(main())
