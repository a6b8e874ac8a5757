"""Validate `agiqa bench` on real data: rank AGIQA-3K's 10 generator settings by predicted quality and alignment
and compare with their ranking by MOS.

    python benchmarks/bench_generators.py                      # full: 2,386 images, 5 folds
    python benchmarks/bench_generators.py --quick              # 24 prompts, 3 folds (a check; writes to a temp dir)
    python benchmarks/bench_generators.py --time-bench 1000    # also time `agiqa bench` on 1,000 images

AGIQA-3K's images come from 10 generator settings, named by the prefix before the last ``_NNN``
(``sd1.5_lowstep_012.jpg``: setting ``sd1.5_lowstep``, prompt ``012``). The script builds a bench folder of
symlinks (``ROOT/<setting>/<NNN>.jpg``) and a suite (``id, prompt, style``) in a temp folder and:

1. **MOS**: compares the settings by their MOS with the bench statistics (the reference ranking).
2. **In-sample**: runs ``agiqa.api.run_bench`` (what ``agiqa bench`` runs) with the shipped default. The default
   was trained on all of these images, so this flatters it.
3. **Out-of-sample**: out-of-fold predictions of a grouped k-fold over prompts (``agiqa.api.cross_val_predict``)
   that trains the default's own recipe -- the shipped training config whose ``name`` is the default model's,
   found through ``agiqa.api.shipped_configs`` -- on the other folds' prompts and predicts the held-out ones.

For each, per dimension: every setting's mean over prompts with its 95% bootstrap interval and rank, and the
Kendall tau-b between the predicted and the MOS means of the 10 settings, with a 95% interval from resampling
prompts (the same prompts for MOS and prediction). Writes ``benchmarks/results/generators_agiqa3k.{md,json,png}``;
``--time-bench N`` also runs the ``agiqa bench`` command on N images (N/10 prompts of every setting) in a fresh
folder and writes ``benchmarks/results/bench_timing.{md,json}``. Threads: ``--threads`` (default 1).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DIMS = {"quality": "mos_quality", "alignment": "mos_align"}


def setting_and_prompt(image_id: str) -> tuple[str, str]:
    """``sd1.5_lowstep_012.jpg`` -> ``("sd1.5_lowstep", "012")``."""
    stem = Path(image_id).stem
    setting, _, number = stem.rpartition("_")
    return setting, number


def build_bench(samples: list, folder: Path) -> tuple[Path, Path]:
    """A bench folder of symlinks and the suite table of the samples' prompts."""
    root = folder / "root"
    suite_rows = {}
    for s in samples:
        setting, pid = setting_and_prompt(s.image_id)
        (root / setting).mkdir(parents=True, exist_ok=True)
        link = root / setting / f"{pid}.jpg"
        if not link.exists():
            link.symlink_to(Path(s.image).resolve())
        suite_rows[pid] = {"id": pid, "prompt": s.prompt, "style": s.meta.get("style") or "(none)"}
    suite = folder / "suite.csv"
    pd.DataFrame(sorted(suite_rows.values(), key=lambda r: r["id"])).to_csv(suite, index=False)
    return root, suite


def per_prompt(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return frame.pivot_table(index="prompt_id", columns="generator", values=column, aggfunc="mean")


def tau_with_interval(pred: pd.DataFrame, mos: pd.DataFrame, n_resamples: int, seed: int = 0) -> dict:
    """Kendall tau-b of the settings' means over prompts, and its bootstrap interval over prompts."""
    from agiqa.eval.metrics import krcc

    pred, mos = pred.reindex(index=mos.index, columns=mos.columns), mos
    value = float(krcc(pred.mean().to_numpy(), mos.mean().to_numpy()))
    rng = np.random.default_rng(seed)
    p, m = pred.to_numpy(), mos.to_numpy()
    draws = []
    for _ in range(n_resamples):
        idx = rng.integers(0, len(m), len(m))
        draws.append(float(krcc(np.nanmean(p[idx], axis=0), np.nanmean(m[idx], axis=0))))
    low, high = np.nanquantile(draws, [0.025, 0.975])
    return {"tau": value, "low": float(low), "high": float(high), "n_settings": int(m.shape[1])}


def default_recipe() -> str:
    """The shipped training config of the default model (the one whose ``name`` is the default's)."""
    from agiqa import api

    found = [n for n in api.shipped_configs() if api.load_config(n).name == api.DEFAULT_MODEL]
    if len(found) != 1:
        raise SystemExit(f"expected one shipped config named {api.DEFAULT_MODEL}, found {found}")
    return found[0]


def overall(stats, dim: str) -> pd.DataFrame:
    rows = stats.means[(stats.means["dimension"] == dim) & (stats.means["group_column"] == "all")]
    return rows.set_index("generator")[["mean", "low", "high", "rank"]]


def side_by_side(sources: dict, dim: str) -> pd.DataFrame:
    parts = {name: overall(stats, dim) for name, stats in sources.items()}
    order = parts["MOS"].sort_values("rank").index
    cols = {}
    for name, part in parts.items():
        part = part.reindex(order)
        cols[f"{name} mean [95% CI]"] = [
            f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in zip(part["mean"], part["low"], part["high"], strict=True)
        ]
        cols[f"{name} rank"] = part["rank"].astype(int).tolist()
    return pd.DataFrame(cols, index=order).rename_axis("setting")


def chart(sources: dict, taus: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 5), dpi=110)
    FigureCanvasAgg(fig)
    for k, dim in enumerate(DIMS, start=1):
        ax = fig.add_subplot(1, 2, k)
        mos = overall(sources["MOS"], dim)
        for j, (name, marker) in enumerate((("in-sample", "o"), ("out-of-fold", "s"))):
            if name not in sources:
                continue
            pred = overall(sources[name], dim).reindex(mos.index)
            t = taus[name][dim]
            ax.errorbar(
                mos["mean"], pred["mean"],
                xerr=[mos["mean"] - mos["low"], mos["high"] - mos["mean"]],
                yerr=[pred["mean"] - pred["low"], pred["high"] - pred["mean"]],
                fmt=marker, ms=4, capsize=2, color=f"C{j}",
                label=f"{name}: Kendall tau {t['tau']:.2f} [{t['low']:.2f}, {t['high']:.2f}]",
            )  # fmt: skip
            if name == "out-of-fold" or "out-of-fold" not in sources:
                for gen, x, y in zip(mos.index, mos["mean"], pred["mean"], strict=True):
                    ax.annotate(gen, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(f"MOS {dim}: mean over prompts (95% CI)", fontsize=8)
        ax.set_ylabel(f"predicted {dim}: mean over prompts (95% CI)", fontsize=8)
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    fig.suptitle("AGIQA-3K generator settings: predicted vs MOS (agiqa-lite)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png")


def time_bench(samples: list, n: int, work: Path, threads: int) -> dict:
    """Run the ``agiqa bench`` command on ``n`` images (the first prompts, every setting) and time it."""
    by_prompt: dict[str, list] = {}
    for s in samples:
        by_prompt.setdefault(setting_and_prompt(s.image_id)[1], []).append(s)
    chosen: list = []
    for pid in sorted(by_prompt):
        if len(chosen) >= n:
            break
        chosen += by_prompt[pid]
    chosen = chosen[:n]
    root, suite = build_bench(chosen, work / "timing")
    out = work / "timing" / "out"
    agiqa = Path(sys.executable).parent / "agiqa"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run(
        [str(agiqa), "bench", str(root), "--prompts", str(suite), "--out", str(out), "--overwrite"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"agiqa bench failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return {
        "images": len(chosen),
        "prompts": len({setting_and_prompt(s.image_id)[1] for s in chosen}),
        "seconds": round(seconds, 1),
        "images_per_second": round(len(chosen) / seconds, 2),
        "command": "agiqa bench ROOT --prompts suite.csv --out OUT (default model, batch 16, default workers)",
        "omp_num_threads": threads,
        "cores": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
    }


def write_results(out: Path, doc: dict, tables: dict, sources: dict, taus: dict) -> None:
    from agiqa.eval.report import markdown_table

    out.mkdir(parents=True, exist_ok=True)
    lines = ["# AGIQA-3K generator settings ranked by agiqa-lite against MOS", ""]
    lines += [f"- {note}" for note in doc["notes"]] + [""]
    for dim in DIMS:
        lines += [f"## {dim}", ""]
        for name in taus:
            t = taus[name][dim]
            lines.append(f"- Kendall tau-b ({name} vs MOS, {t['n_settings']} settings): **{t['tau']:.3f}** "
                         f"(95% CI over prompts [{t['low']:.3f}, {t['high']:.3f}])")  # fmt: skip
        lines += ["", markdown_table(tables[dim]), ""]
    (out / "generators_agiqa3k.md").write_text("\n".join(lines))
    (out / "generators_agiqa3k.json").write_text(json.dumps(doc, indent=1) + "\n")
    chart(sources, taus, out / "generators_agiqa3k.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data" / "agiqa3k")
    parser.add_argument("--quick", action="store_true", help="24 prompts, 3 folds, 200 resamples, temp output")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=None, help="keep the bench folders here (resumable scoring)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results)")
    parser.add_argument("--no-oof", action="store_true", help="skip the out-of-fold models")
    parser.add_argument("--time-bench", type=int, default=0, metavar="N", help="also time `agiqa bench` on N images")
    parser.add_argument("--timing-only", action="store_true", help="with --time-bench: skip the ranking validation")
    args = parser.parse_args()
    import torch

    from agiqa import api

    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_generators_"))
    out = args.out or (work / "results" if args.quick else RESULTS)
    if not args.timing_only:
        validate(args, work, out)
    if args.time_bench:
        write_timing(
            time_bench(api.load_dataset("agiqa3k", args.root).samples, args.time_bench, work, args.threads), out, args
        )


def validate(args: argparse.Namespace, work: Path, out: Path) -> None:
    """The three rankings of the settings (MOS, in-sample, out-of-fold) and their Kendall taus, written to ``out``."""
    from agiqa import api

    dataset = api.load_dataset("agiqa3k", args.root)
    if args.quick:
        keep = sorted({setting_and_prompt(s.image_id)[1] for s in dataset.samples})[:24]
        dataset.samples = [s for s in dataset.samples if setting_and_prompt(s.image_id)[1] in set(keep)]
        args.folds, args.resamples = 3, 200
    root, suite_file = build_bench(dataset.samples, work)
    suite = api.load_suite(suite_file)
    scorer = api.load(api.DEFAULT_MODEL)
    dims = {d: True for d in DIMS}
    mos_scores = pd.DataFrame(
        [
            {"generator": setting_and_prompt(s.image_id)[0], "prompt_id": setting_and_prompt(s.image_id)[1],
             **{d: s.labels[d] for d in DIMS}}
            for s in dataset.samples
        ]
    )  # fmt: skip
    sources, frames = {}, {}
    sources["MOS"], _ = api.summarise_bench(
        mos_scores, dims, suite, work / "mos", "AGIQA-3K by MOS", n_resamples=args.resamples
    )
    frames["MOS"] = mos_scores
    start = time.perf_counter()
    bench = api.run_bench(scorer, root, suite_file, work / "in-sample", n_resamples=args.resamples, reuse_scores=True)
    in_sample_seconds = time.perf_counter() - start
    sources["in-sample"] = bench.stats
    frames["in-sample"] = bench.scores.assign(**{d: bench.scores[d].astype(float) for d in DIMS})
    recipe = None
    if not args.no_oof:
        recipe = default_recipe()
        config = api.load_config(recipe, data={"root": str(args.root)}, train={"progress": False})
        preds = api.cross_val_predict(config, dataset, n_folds=args.folds, progress=True)
        parts = preds["image"].map(setting_and_prompt)
        oof = preds.assign(generator=parts.str[0], prompt_id=parts.str[1])
        sources["out-of-fold"], _ = api.summarise_bench(
            oof, dims, suite, work / "oof", "AGIQA-3K out-of-fold", n_resamples=args.resamples
        )
        frames["out-of-fold"] = oof
    taus = {
        name: {
            d: tau_with_interval(per_prompt(frames[name], d), per_prompt(mos_scores, d), args.resamples) for d in DIMS
        }
        for name in sources
        if name != "MOS"
    }
    tables = {d: side_by_side(sources, d) for d in DIMS}
    notes = [
        f"{len(dataset.samples)} images of {suite.table.shape[0]} prompts from {args.root} "
        f"({len(bench.stats.ranking('quality'))} settings); model {scorer.name}",
        "mean = mean over prompts of each setting's per-prompt mean; 95% intervals: percentile bootstrap over "
        f"prompts ({args.resamples} resamples); tau interval: the same prompts resampled for MOS and prediction",
        "in-sample: `agiqa bench` with the shipped default, which was trained on all of these images (flattering)",
    ]
    if recipe is not None:
        notes.append(
            f"out-of-fold: {args.folds}-fold cross-validation grouped by prompt, training the default's shipped "
            f"recipe `{recipe}` on the other folds and predicting the held-out prompts' images"
        )
    notes.append(f"command: python benchmarks/bench_generators.py{' --quick' if args.quick else ''}")
    doc = {
        "notes": notes,
        "kendall_tau": taus,
        "settings": {
            d: {name: overall(stats, d).reset_index().to_dict("records") for name, stats in sources.items()}
            for d in DIMS
        },
        "in_sample_bench_seconds": round(in_sample_seconds, 1),
        "threads": args.threads,
    }
    write_results(out, doc, tables, sources, taus)
    print(f"wrote {out / 'generators_agiqa3k.md'} (.json, .png); bench folders in {work}")
    print((out / "generators_agiqa3k.md").read_text())


def write_timing(timing: dict, out: Path, args: argparse.Namespace) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_timing.json").write_text(json.dumps(timing, indent=1) + "\n")
    (out / "bench_timing.md").write_text(
        f"# `agiqa bench` on {timing['images']} AGIQA-3K images\n\n"
        f"{timing['seconds']} s ({timing['images_per_second']} images/s), {timing['prompts']} prompts x 10 "
        f"settings, {timing['command']}; {timing['cores']} cores, load average at the end "
        f"{timing['load_average_at_end'][0]:.1f}. Command: "
        f"python benchmarks/bench_generators.py --time-bench {args.time_bench}"
        f"{' --timing-only' if args.timing_only else ''}\n"
    )
    print(json.dumps(timing, indent=1))


if __name__ == "__main__":
    main()
