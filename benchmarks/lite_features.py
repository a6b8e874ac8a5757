"""Which lite image features carry AGIQA-3K quality and alignment: a ridge probe over frozen features.

    python benchmarks/lite_features.py [--root ../shared/data/agiqa3k] [--sizes 224 384 512]
    python benchmarks/lite_features.py --sizes 384 --variants lite0 lite1 lite2   # the image towers compared

For each input size the lite encoder (``pooling=multilevel``, ``imagenet_bridge=True``) encodes every image once
(kept in ``<cache>/lite_features/``); its summary holds every feature studied here: per-stage mean and
standard deviation of the feature maps, the final map's mean (the ``head`` pooling) and the semantic part
(ImageNet class names in the text space). A ridge regression (``benchmarks/_ridge.py``) over subsets of them
is scored over the 10 stored grouped splits (``src/agiqa/splits/agiqa3k.json``). Writes
``benchmarks/results/lite_features.{md,json}``. These rows chose the default model's encoder settings.

With ``--variants`` the towers EfficientNet-Lite0/1/2 are compared at each size (and Lite0 + the largest
together), with the seconds each took to encode the images; that writes ``benchmarks/results/lite_variants.*``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _ridge import tuned_ridge

from agiqa.data.splits import shipped_splits

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SPLITS = shipped_splits("agiqa3k")
DEFAULT_ROOT = REPO.parent / "shared" / "data" / "agiqa3k"


@torch.no_grad()
def encode(images: list, prompts: list[str], size: int, cache: Path, variant: str = "lite0") -> dict[str, np.ndarray]:
    """Image summaries at ``size`` px and prompt embeddings, from ``cache`` when present; ``encode_seconds`` is
    the time the images took (decoding included), ``threads`` torch's thread count then."""
    from agiqa.data.images import load_image
    from agiqa.encoders import create_encoder
    from agiqa.encoders.fast import accelerate

    path = cache / f"{'lite' if variant == 'lite0' else variant}_multilevel_imagenet_{size}.npz"
    if path.is_file():
        return dict(np.load(path))
    encoder = create_encoder("lite", image_size=size, pooling="multilevel", imagenet_bridge=True, variant=variant)
    runtime = accelerate(encoder, "auto", threads=torch.get_num_threads())  # ONNX Runtime on a CPU, as `agiqa score`
    print(f"[{variant} {size} px] image tower runs on {runtime}", flush=True)
    start, rows = time.perf_counter(), []
    for i in range(0, len(images), 4):
        pixels = torch.stack([encoder.preprocess(load_image(ref)) for ref in images[i : i + 4]])
        rows.append(encoder.encode_image(pixels).summary.numpy())
        if i % 400 == 0:
            print(f"[{variant} {size} px] {i}/{len(images)} images, {time.perf_counter() - start:.0f} s", flush=True)
    seconds = time.perf_counter() - start
    unique = sorted(set(prompts))
    text = encoder.encode_text(unique).summary.numpy()
    index = {p: k for k, p in enumerate(unique)}
    out = {
        "image": np.concatenate(rows),
        "prompt": text[[index[p] for p in prompts]],
        "stats_widths": encoder.stats_widths,
        "encode_seconds": np.float64(seconds),
        "threads": np.int64(torch.get_num_threads()),
    }
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def blocks(feats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Named feature blocks cut from a summary (layout: ``agiqa.encoders.lite``)."""
    image, edges = feats["image"], np.cumsum([0, *feats["stats_widths"]])
    parts = [image[:, start:end] for start, end in zip(edges[:-1], edges[1:], strict=True)]  # mean, std per stage
    semantic = image[:, edges[-1] :]
    prompt = feats["prompt"] / np.linalg.norm(feats["prompt"], axis=1, keepdims=True)
    return {
        "head_mean": parts[-2],
        "head_std": parts[-1],
        "stage_means": np.hstack(parts[0::2]),
        "stage_stats": np.hstack(parts),
        "semantic": semantic,
        "prompt": prompt,
        "bridge": np.hstack([semantic * prompt, (semantic * prompt).sum(1, keepdims=True)]),
    }


def probe(x: list[np.ndarray], y: np.ndarray, table, splits) -> list[float]:
    """Test SRCC of a ridge over the feature blocks ``x`` on each split (penalty tuned on a grouped validation part)."""
    from agiqa.eval import metrics as M
    from agiqa.train.selection import carve_validation

    scores = []
    for i, split in enumerate(splits):
        train = [table.row[k] for k in split.train]
        test = [table.row[k] for k in split.test]
        pred = tuned_ridge(x, y, train, test, carve_validation(table, train, 0.1, i))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", M.MetricWarning)
            scores.append(float(M.srcc(pred, y[test])))
    return scores


ROWS = [  # (dimension, label, [(size, block), ...])
    ("quality", "224 px, final map mean (the `head` pooling)", [(224, "head_mean")]),
    ("quality", "224 px, final map mean + std", [(224, "head_mean"), (224, "head_std")]),
    ("quality", "224 px, means of 6 stages + final map", [(224, "stage_means")]),
    ("quality", "224 px, means + stds of 6 stages + final map (`multilevel`)", [(224, "stage_stats")]),
    ("quality", "384 px, `multilevel`", [(384, "stage_stats")]),
    ("quality", "512 px, `multilevel`", [(512, "stage_stats")]),
    ("quality", "224 + 384 px, `multilevel`", [(224, "stage_stats"), (384, "stage_stats")]),
    ("alignment", "224 px, `head` + prompt", [(224, "head_mean"), (224, "prompt")]),
    ("alignment", "224 px, `multilevel` + prompt", [(224, "stage_stats"), (224, "prompt")]),
    ("alignment", "384 px, `multilevel` + prompt", [(384, "stage_stats"), (384, "prompt")]),
    (
        "alignment",
        "384 px, `multilevel` + prompt + ImageNet bridge",
        [(384, "stage_stats"), (384, "prompt"), (384, "semantic"), (384, "bridge")],
    ),
    (
        "alignment",
        "512 px, `multilevel` + prompt + ImageNet bridge",
        [(512, "stage_stats"), (512, "prompt"), (512, "semantic"), (512, "bridge")],
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--sizes", type=int, nargs="*", default=[224, 384, 512])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--load-note", default="", help="what else ran while encoding (written to the results)")
    parser.add_argument("--variants", nargs="*", default=None, help="compare these image towers (lite0 lite1 lite2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.variants:
        compare_variants(args)
        return
    from agiqa.data import load_dataset
    from agiqa.data.splits import stored_splits
    from agiqa.eval import metrics as M
    from agiqa.train.cache import default_cache_dir
    from agiqa.train.table import image_table

    dataset = load_dataset("agiqa3k", args.root)
    table = image_table(dataset)
    cache = default_cache_dir().parent / "lite_features"
    feats = {size: blocks(encode(table.images, table.prompts, size, cache)) for size in args.sizes}
    splits = stored_splits(dataset, SPLITS, 10)
    labels = {"quality": table.labels["quality"], "alignment": table.labels["alignment"]}
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.MetricWarning)
        zero_shot = float(M.srcc(feats[min(args.sizes)]["bridge"][:, -1], labels["alignment"]))
    for dim, label, spec in ROWS:
        if any(size not in feats for size, _ in spec):
            continue
        scores = probe([feats[size][block] for size, block in spec], labels[dim], table, splits)
        results.append({"dimension": dim, "features": label, "srcc_mean": np.mean(scores), "srcc_std": np.std(scores)})
        print(f"{dim:9s} {label:60s} {np.mean(scores):.4f} ± {np.std(scores):.4f}", flush=True)
    lines = [
        "# Lite image features on AGIQA-3K: ridge probe, 10 grouped 4:1 splits (SRCC mean ± std)",
        "",
        "Generated by `python benchmarks/lite_features.py`. Frozen EfficientNet-Lite0 features at each input size,",
        "ridge over the listed blocks (`benchmarks/_ridge.py`); `prompt` is the MiniLM sentence embedding, the",
        "ImageNet bridge adds the image's class-name mixture in the text space and its product and cosine with",
        "the prompt.",
        "",
        "| dimension | features | SRCC |",
        "|---|---|---|",
        *[f"| {r['dimension']} | {r['features']} | {r['srcc_mean']:.4f} ± {r['srcc_std']:.4f} |" for r in results],
        "",
        f"Zero-shot: SRCC between the bridge's image-prompt cosine ({min(args.sizes)} px) and the alignment MOS, "
        f"all {len(table.images)} images: {zero_shot:.4f}.",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "lite_features.md").write_text("\n".join(lines) + "\n")
    doc = {"rows": results, "zero_shot_bridge_alignment_srcc": zero_shot, "sizes": args.sizes}
    (RESULTS / "lite_features.json").write_text(json.dumps(doc, indent=1) + "\n")
    print("\n".join(lines))


def variant_rows(variants: list[str], sizes: list[int]) -> list[tuple[str, str, list[tuple[str, int, str]]]]:
    """Rows of the tower comparison: each tower alone at each size, then Lite0 with the last tower together."""
    rows = []
    for size in sizes:
        for v in variants:
            rows.append(("quality", f"{v}, {size} px, `multilevel`", [(v, size, "stage_stats")]))
        for v in variants:
            spec = [(v, size, b) for b in ("stage_stats", "prompt", "semantic", "bridge")]
            rows.append(("alignment", f"{v}, {size} px, `multilevel` + prompt + ImageNet bridge", spec))
        if len(variants) > 1 and variants[0] == "lite0":
            both = f"lite0 + {variants[-1]}, {size} px"
            pair = [("lite0", size, "stage_stats"), (variants[-1], size, "stage_stats")]
            rows.append(("quality", f"{both}, `multilevel`", pair))
            spec = [("lite0", size, b) for b in ("stage_stats", "prompt", "semantic", "bridge")]
            spec += [(variants[-1], size, b) for b in ("stage_stats", "semantic", "bridge")]
            rows.append(("alignment", f"{both}, `multilevel` + prompt + ImageNet bridge (both)", spec))
    return rows


def compare_variants(args: argparse.Namespace) -> None:
    """The ``--variants`` run: ridge probe per tower and size, the encode cost of each (see module docstring)."""
    from agiqa.data import load_dataset
    from agiqa.data.splits import stored_splits
    from agiqa.train.cache import default_cache_dir
    from agiqa.train.table import image_table

    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    load_before = os.getloadavg()
    dataset = load_dataset("agiqa3k", args.root)
    table = image_table(dataset)
    cache = default_cache_dir().parent / "lite_features"
    raw = {(v, size): encode(table.images, table.prompts, size, cache, v) for v in args.variants for size in args.sizes}
    feats = {key: blocks(value) for key, value in raw.items()}
    splits = stored_splits(dataset, SPLITS, 10)
    labels = {"quality": table.labels["quality"], "alignment": table.labels["alignment"]}
    results = []
    for dim, label, spec in variant_rows(args.variants, args.sizes):
        scores = probe([feats[(v, size)][block] for v, size, block in spec], labels[dim], table, splits)
        results.append({"dimension": dim, "features": label, "srcc_mean": np.mean(scores), "srcc_std": np.std(scores)})
        print(f"{dim:9s} {label:70s} {np.mean(scores):.4f} ± {np.std(scores):.4f}", flush=True)
    n = len(table.images)
    cost = [
        {
            "variant": v,
            "size": size,
            "encode_seconds": float(raw[(v, size)]["encode_seconds"]) if "encode_seconds" in raw[(v, size)] else None,
            "threads": int(raw[(v, size)]["threads"]) if "threads" in raw[(v, size)] else None,
        }
        for v in args.variants
        for size in args.sizes
    ]
    lines = [
        "# EfficientNet-Lite0/1/2 as the image tower: ridge probe on AGIQA-3K, 10 grouped 4:1 splits (SRCC mean ± std)",
        "",
        f"Generated by `python benchmarks/lite_features.py --sizes {' '.join(map(str, args.sizes))} --variants "
        f"{' '.join(args.variants)}` ({started}, 2-CPU machine, load average at start "
        f"{', '.join(f'{x:.2f}' for x in load_before)}). Frozen towers, the features of `lite_features.md`",
        "(stage statistics, MiniLM prompt embedding, ImageNet bridge); a ridge over them per split.",
        "",
        "| dimension | features | SRCC |",
        "|---|---|---|",
        *[f"| {r['dimension']} | {r['features']} | {r['srcc_mean']:.4f} ± {r['srcc_std']:.4f} |" for r in results],
        "",
        f"Encoding cost ({n} images, JPEG decoding included, image tower on ONNX Runtime as `agiqa score` runs it on a "
        "CPU; see the note on load below):",
        "",
        "| tower | px | seconds | images/s | torch threads |",
        "|---|---|---|---|---|",
        *[
            f"| {c['variant']} | {c['size']} | {c['encode_seconds']:.0f} | {n / c['encode_seconds']:.2f} "
            f"| {c['threads']} |"
            if c["encode_seconds"]
            else f"| {c['variant']} | {c['size']} | (cached before timing was recorded) | | |"
            for c in cost
        ],
    ]
    if args.load_note:
        lines += ["", args.load_note]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "lite_variants.md").write_text("\n".join(lines) + "\n")
    doc = {"rows": results, "cost": cost, "sizes": args.sizes, "variants": args.variants, "started": started}
    (RESULTS / "lite_variants.json").write_text(json.dumps(doc, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
