"""Scoring speed on real AGIQA-3K images: eager PyTorch against each faster path, end to end, and Ray Data.

Usage (from the repository root)::

    python benchmarks/bench_score.py --quick         # 48 images, 2 repeats: checks the script (minutes)
    python benchmarks/bench_score.py                 # 400 images, 3 repeats, Ray with 1 and 2 actors
    python benchmarks/bench_score.py --compile       # also torch.compile (slow to compile on a small CPU)

Writes ``benchmarks/results/score_throughput.{json,md}``. Everything runs with ``--threads`` torch / ONNX Runtime
threads (default 1) on the same images and model, after a warm-up:

* **model load**: ``agiqa.load`` per runtime (the ONNX export is cached in the agiqa cache folder; a load that had
  to export is reported separately).
* **forward only** per path, on images decoded and preprocessed beforehand, batch ``--batch-size``: ``eager``
  (float32, the reference), ``onnx`` (ONNX Runtime), ``channels_last`` and ``bf16`` (eager under CPU autocast),
  and ``compile`` with ``--compile``. The paths are timed in turn, ``--repeats`` rounds (interleaved, so a burst of
  load from other jobs hits every path), and the median is reported. Each path's max |score - eager score| over
  all images and dimensions, and the SRCC of its quality score against MOS, come from the same run.
* **end to end**: ``agiqa score``'s pipeline (``score_to_file``: decode workers, batches, chunked csv) with the
  eager and the default runtime, interleaved likewise; and a naive one-image-at-a-time loop.
* **threads**: the default runtime forward only with 1 torch / ONNX Runtime thread against one per core, in
  interleaved rounds (what ``--threads`` defaults are checked against).
* **Ray Data**: ``agiqa score --engine ray``'s path (``score_shards``) on a local Ray instance with 1 and 2
  actors of ``--threads`` threads each, actor start and model load included.

Peak memory is the peak resident set size of this process (``getrusage``; it holds every runtime's model) and of
the largest decode worker. Other jobs on the machine slow every phase: the load average before and after is
recorded, so figures from a busy machine can be recognised.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from agiqa.api import DEFAULT_MODEL, load
from agiqa.data.images import load_image
from agiqa.pipeline.engine import default_workers, score_batch
from agiqa.pipeline.resumable import score_to_file

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("AGIQA_SHARED_DATA", ROOT.parent / "shared" / "data")) / "agiqa3k"


def _rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def _forward(model, pixels: torch.Tensor, prompts: list[str], batch_size: int, autocast: bool = False):
    """Seconds and scores ``{dim: array}`` of batched model calls over pre-decoded pixels."""
    parts: dict[str, list[np.ndarray]] = {}
    context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else nullcontext()
    start = time.perf_counter()
    with torch.inference_mode(), context:
        for s in range(0, len(prompts), batch_size):
            out = score_batch(model, pixels[s : s + batch_size], prompts[s : s + batch_size])
            for dim, values in out.items():
                parts.setdefault(dim, []).append(np.asarray(torch.as_tensor(values).float()))
    seconds = time.perf_counter() - start
    return seconds, {dim: np.concatenate(v) for dim, v in parts.items()}


def _naive(model, paths: list[Path], prompts: list[str]) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        for path, prompt in zip(paths, prompts, strict=True):
            model(model.preprocess(load_image(path)).unsqueeze(0), [prompt])
    return time.perf_counter() - start


def _timed_load(model: str, runtime: str, threads: int):
    start = time.perf_counter()
    scorer = load(model, runtime=runtime, threads=threads)
    return scorer, time.perf_counter() - start


def _channels_last(pixels: torch.Tensor) -> torch.Tensor:
    """NHWC memory layout of every image (models with several views per image take ``(N, V, 3, S, S)``)."""
    flat = pixels.flatten(0, pixels.dim() - 4).contiguous(memory_format=torch.channels_last)
    return flat.unflatten(0, pixels.shape[:-3])


def _paths(args, scorers: dict) -> dict[str, tuple[object, bool, Callable[[torch.Tensor], torch.Tensor]]]:
    """Path name -> (model, bf16 autocast, how the pixels are laid out)."""
    same = lambda x: x  # noqa: E731
    paths = {"eager": (scorers["eager"].model, False, same), "onnx": (scorers["onnx"].model, False, same)}
    cl = scorers["channels_last"].model
    cl.encoder.to(memory_format=torch.channels_last)
    paths["channels_last"] = (cl, False, _channels_last)
    paths["bf16"] = (scorers["bf16"].model, True, same)
    if args.compile:
        enc = scorers["compile"].model.encoder
        enc._image_tower = torch.compile(enc._image_tower, dynamic=False)
        paths["compile"] = (scorers["compile"].model, False, same)
    return paths


def _threads_ab(args, pixels: torch.Tensor, prompts: list[str]) -> dict[str, float]:
    """Default runtime forward only with 1 thread against all cores, interleaved rounds: median images/s each."""
    counts = sorted({1, os.cpu_count() or 1})
    scorers = {k: load(args.model, threads=k) for k in counts}
    times: dict[int, list[float]] = {k: [] for k in counts}
    for _ in range(max(args.repeats, 3)):
        for k, scorer in scorers.items():
            torch.set_num_threads(k)
            times[k].append(_forward(scorer.model, pixels, prompts, args.batch_size)[0])
    torch.set_num_threads(args.threads)
    return {str(k): round(len(prompts) / statistics.median(v), 2) for k, v in times.items()}


def _ray_rates(args, paths: list[Path], prompts: list[str], tmp: Path) -> dict[str, float]:
    try:
        import ray
    except ImportError:
        return {}
    from agiqa.api import init_ray, score_shards

    init_ray(num_cpus=os.cpu_count() or 2, object_store_mb=256)
    table = pd.DataFrame({"image": [str(p) for p in paths], "prompt": prompts})
    rates = {}
    for actors in (1, 2):
        start = time.perf_counter()
        kw = {"actors": actors, "threads": args.threads, "batch_size": args.batch_size}
        summary = score_shards(table, tmp / f"ray{actors}", args.model, shard_size=max(1, len(paths) // 4), **kw)
        rates[str(actors)] = round(summary.rows / (time.perf_counter() - start), 2)
    ray.shutdown()
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=400, help="images to score")
    parser.add_argument("--quick", action="store_true", help="48 images, 2 repeats, 16 in the naive loop")
    parser.add_argument("--naive-n", type=int, default=None, help="images for the naive loop (default: --n)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds per path (median reported)")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--threads", type=int, default=1, help="torch / ONNX Runtime threads")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the image tower")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray Data path")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with data.csv and images/")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.repeats, args.naive_n = min(args.n, 48), min(args.repeats, 2), args.naive_n or 16

    if not (args.data / "data.csv").is_file():
        print(f"skipped: AGIQA-3K not found at {args.data} (set AGIQA_SHARED_DATA or pass --data)")
        return 0
    load_before = os.getloadavg()
    labels = pd.read_csv(args.data / "data.csv").head(args.n)
    paths = [args.data / "images" / name for name in labels["name"]]
    prompts = labels["prompt"].astype(str).tolist()
    n = len(paths)

    loads: dict[str, list[float]] = {"eager": [], "onnx": []}
    scorers = {}
    for name, runtime in (("eager", "eager"), ("onnx", "onnx"), ("eager", "eager"), ("onnx", "onnx")):
        scorers[name], seconds = _timed_load(args.model, runtime, args.threads)
        loads[name].append(seconds)  # the first onnx load may include the one-off export
    for name in ("channels_last", "bf16", *(("compile",) if args.compile else ())):
        scorers[name], _ = _timed_load(args.model, "eager", args.threads)
    default = load(args.model, threads=args.threads)

    pixels = torch.stack([default.preprocess(p) for p in paths])
    runs = _paths(args, scorers)
    times: dict[str, list[float]] = {k: [] for k in runs}
    scores: dict[str, dict[str, np.ndarray]] = {}
    for model, bf16, layout in runs.values():  # warm-up (and compilation)
        _forward(model, layout(pixels[: 2 * args.batch_size]), prompts[: 2 * args.batch_size], args.batch_size, bf16)
    for _ in range(args.repeats):
        for name, (model, bf16, layout) in runs.items():
            seconds, scores[name] = _forward(model, layout(pixels), prompts, args.batch_size, bf16)
            times[name].append(seconds)
    threads_ab = _threads_ab(args, pixels, prompts)
    del pixels
    mos = labels["mos_quality"].to_numpy(dtype=float)
    paths_table = {}
    for name in runs:
        delta = max(float(np.max(np.abs(scores[name][d] - scores["eager"][d]))) for d in scores["eager"])
        srcc = float(spearmanr(scores[name]["quality"], mos)[0]) if "quality" in scores[name] else float("nan")
        rate = n / statistics.median(times[name])
        paths_table[name] = {"images_per_s": round(rate, 2), "max_abs_delta": delta, "srcc_quality": round(srcc, 4)}

    e2e: dict[str, list[float]] = {"eager": [], default.runtime: []}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):
            for name, scorer in (("eager", scorers["eager"]), (default.runtime, default)):
                start = time.perf_counter()
                out = Path(tmp) / f"{name}{k}.csv"
                score_to_file(scorer.model, paths, prompts, out, batch_size=args.batch_size, workers=args.workers)
                e2e[name].append(n / (time.perf_counter() - start))
        rss_main, rss_workers = _rss_mb(resource.RUSAGE_SELF), _rss_mb(resource.RUSAGE_CHILDREN)
        naive_n = min(n, args.naive_n or n)
        naive = naive_n / _naive(default.model, paths[:naive_n], prompts[:naive_n])
        ray_rates = {} if args.no_ray else _ray_rates(args, paths, prompts, Path(tmp))
    load_after = os.getloadavg()

    e2e_default = statistics.median(e2e[default.runtime])
    result = {
        "model": default.name,
        "default_runtime": default.runtime,
        "n_images": n,
        "repeats": args.repeats,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "threads": args.threads,
        "model_load_s": {k: round(min(v), 2) for k, v in loads.items()},
        "first_onnx_load_s": round(loads["onnx"][0], 2),
        "forward_only": paths_table,
        "end_to_end_images_per_s": {k: round(statistics.median(v), 2) for k, v in e2e.items()},
        "ratio_end_to_end_over_forward_only": round(e2e_default / paths_table[default.runtime]["images_per_s"], 3),
        "forward_only_images_per_s_by_threads": threads_ab,
        "naive_loop_images_per_s": round(naive, 2),
        "naive_loop_n_images": naive_n,
        "ray_images_per_s_by_actors": ray_rates,
        "peak_rss_main_mb": round(rss_main, 1),
        "peak_rss_workers_mb": round(rss_workers, 1),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
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
    rows = "\n".join(
        f"| {name} | {p['images_per_s']} | {p['max_abs_delta']:.2e} | {p['srcc_quality']} |"
        for name, p in r["forward_only"].items()
    )
    e2e = ", ".join(f"{k} {v}" for k, v in r["end_to_end_images_per_s"].items())
    ray_rates = r["ray_images_per_s_by_actors"]
    ray_line = ", ".join(f"{k} actor(s): {v} images/s" for k, v in ray_rates.items()) or "not run"
    best = max(ray_rates.values(), default=None)
    scale = (
        f"At {best} images/s per node like this one, 100M images take {1e8 / best / 3600:,.0f} node-hours: "
        f"{1e8 / best / 3600 / 10:,.0f} h on 10 nodes, {1e8 / best / 3600 / 100:,.1f} h on 100."
        if best
        else ""
    )
    return f"""# Scoring speed ({r["model"]}, {r["n_images"]} AGIQA-3K images, batch {r["batch_size"]})

Measured by `benchmarks/bench_score.py` on {r["date"]}: {m["cpu_count"]} CPU cores ({m["processor"]}), torch
{m["torch"]}, {r["threads"]} model thread(s), {r["workers"]} decoding worker(s), median of {r["repeats"]}
interleaved rounds. Load average before / after: {m["loadavg_before"][0]} / {m["loadavg_after"][0]} (other jobs
were sharing the machine when this is above ~0.5).

Forward only (pre-decoded images; max |Δ| against eager float32 over every image and dimension, 0-5 scale):

| path | images/s | max abs Δ score | SRCC quality vs MOS |
| --- | ---: | ---: | ---: |
{rows}

- default runtime: **{r["default_runtime"]}**; model load (warm cache): {r["model_load_s"]} s; first ONNX load
  (includes the export when the cache was empty): {r["first_onnx_load_s"]} s
- end to end (`agiqa score` pipeline), images/s: {e2e}
- end to end / forward only ({r["default_runtime"]}): **{r["ratio_end_to_end_over_forward_only"]}** (goal >= 0.9)
- forward only ({r["default_runtime"]}) by threads, images/s: {r["forward_only_images_per_s_by_threads"]}
- naive loop, one image at a time ({r["naive_loop_n_images"]} images): {r["naive_loop_images_per_s"]} images/s
- Ray Data (`agiqa score --engine ray`, actor start and model load included): {ray_line}. {scale}
- peak RSS: {r["peak_rss_main_mb"]} MB main process (every path's model), {r["peak_rss_workers_mb"]} MB largest
  worker
"""


if __name__ == "__main__":
    sys.exit(main())
