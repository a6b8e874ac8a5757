"""Write the reference distribution of the shipped default model into its card.

    python benchmarks/default_reference.py --out-of-fold 5   # what is shipped: held-out prompts' predictions
    python benchmarks/default_reference.py                   # in-sample: the shipped model on its training images

The reference is the distribution a percentile is read against: the 101 quantiles p0..p100 of each dimension
(``agiqa.api.Reference.from_scores``, the function ``agiqa train`` uses for every run folder's card), written under
``reference:`` in ``src/agiqa/model_configs/agiqa-lite.yaml`` (the rest of the card is left as it is).

* ``--out-of-fold K`` (shipped): the default's own recipe is trained K times on K-1 folds of AGIQA-3K's prompts
  (``agiqa.api.cross_val_predict``) and every image is predicted by the model that did not see its prompt. A user's
  prompts are new to the model, and on new prompts the default's alignment reads about 0.5 lower than on its
  training prompts (``benchmarks/results/generators_agiqa3k.md``); an in-sample reference would put a typical new
  image near p30 instead of p50. The comparison of both is written to ``benchmarks/results/default_reference.md``.
* without it: the shipped model scores every image it was trained on (all 2,386; 10% of the prompts held out only
  to pick the best epoch) through the public scoring API; the scores are kept in ``--work`` per weights file
  (resumable; new weights are scored anew).

Rerun it whenever the default's weights change (``benchmarks/train_default.py`` writes the training rows' reference
of a new run).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml
from bench_generators import default_recipe

REPO = Path(__file__).resolve().parents[1]
CARD = REPO / "src" / "agiqa" / "model_configs" / "agiqa-lite.yaml"


def write_reference(card_path: Path, reference: dict) -> None:
    """Replace the card's ``reference`` (header comments kept, every other key unchanged and in order)."""
    text = card_path.read_text()
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    card = {k: v for k, v in yaml.safe_load(text).items() if k != "reference"}
    note = "# reference: written by benchmarks/default_reference.py\n"
    header = header if note in header else header + note
    body = yaml.safe_dump(card, sort_keys=False, allow_unicode=True)
    # the quantile lists in flow style: one line per dimension instead of 101
    tail = yaml.safe_dump({"reference": reference}, sort_keys=False, default_flow_style=None, width=100)
    card_path.write_text(header + body + tail)


def in_sample_scores(scorer, samples, work: Path):
    """The shipped model's scores of ``samples`` through the public API (kept in ``work``; resumable)."""
    import hashlib

    from agiqa import api
    from agiqa.models.registry import weights_path

    work.mkdir(parents=True, exist_ok=True)
    weights = hashlib.sha1(weights_path(scorer.model.card).read_bytes()).hexdigest()[:12]  # new weights, new scores
    out = work / f"scores_{len(samples)}_{weights}.csv"
    if not out.exists():
        images, prompts, names = [s.image for s in samples], [s.prompt for s in samples], [s.image_id for s in samples]
        scorer.score_to_file(images, prompts, out, names=names)
    scores = api.read_table(out)
    failed = scores["error"].str.strip() != ""
    if failed.any():
        raise SystemExit(f"{int(failed.sum())} images failed (see {out}); a reference needs every training image")
    return scores


def _deciles(values) -> str:
    import numpy as np

    return " / ".join(f"{x:.2f}" for x in np.quantile(values, [0.1, 0.5, 0.9]))


def write_comparison(dataset, in_sample, oof, dims: list[str], folds: int, recipe: str) -> None:
    """``benchmarks/results/default_reference.md``: MOS, in-sample and out-of-fold predictions side by side."""
    import numpy as np

    mos = {s.image_id: s.labels for s in dataset.samples}
    lines = [
        "# The default's reference distribution: in-sample against out-of-fold predictions",
        "",
        f"`python benchmarks/default_reference.py --out-of-fold {folds}` on {len(oof)} AGIQA-3K images "
        f"(recipe `{recipe}`, {folds} folds grouped by prompt). In-sample: the shipped model on the images it was "
        "trained on. Out-of-fold: each image predicted by a model of the same recipe that did not see its prompt.",
        "",
        "| dimension | MOS mean | in-sample mean | out-of-fold mean | in-sample p10 / p50 / p90 "
        "| out-of-fold p10 / p50 / p90 | in-sample percentile of the out-of-fold median |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in dims:
        truth = np.array([mos[i].get(d, np.nan) for i in oof["image"]], dtype=float)
        ins, out = in_sample[d].astype(float).to_numpy(), oof[d].astype(float).to_numpy()
        lines.append(
            f"| {d} | {np.nanmean(truth):.3f} | {ins.mean():.3f} | {out.mean():.3f} "
            f"| {_deciles(ins)} | {_deciles(out)} "
            f"| p{100 * (ins < np.median(out)).mean():.0f} |"
        )
    lines += ["", "The shipped card's `reference` is the out-of-fold one.", ""]
    path = REPO / "benchmarks" / "results" / "default_reference.md"
    path.write_text("\n".join(lines))
    print("wrote", path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data" / "agiqa3k")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "agiqa" / "default_reference")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="first N images only (a quick check; not written)")
    parser.add_argument("--out-of-fold", type=int, default=0, metavar="K", help="reference from K-fold predictions")
    args = parser.parse_args()
    import torch

    from agiqa import api

    torch.set_num_threads(args.threads)
    dataset = api.load_dataset("agiqa3k", args.root)
    samples = dataset.samples[: args.limit] if args.limit else dataset.samples
    scorer = api.load(api.DEFAULT_MODEL)
    dims = [d.name for d in scorer.dimensions]
    in_sample = in_sample_scores(scorer, samples, args.work)
    reference = api.Reference.from_scores(
        {d: in_sample[d].astype(float).to_numpy() for d in dims},
        source=f"predictions of {scorer.name} on its {len(samples)} training images (all of AGIQA-3K's data.csv)",
    )
    if args.out_of_fold:
        if args.limit:
            raise SystemExit("--limit and --out-of-fold do not go together (the folds need every prompt)")
        recipe = default_recipe()
        config = api.load_config(recipe, data={"root": str(args.root)}, train={"progress": False})
        oof = api.cross_val_predict(config, dataset, n_folds=args.out_of_fold, progress=True)
        oof.to_csv(args.work / f"out_of_fold_{args.out_of_fold}.csv", index=False)
        held_out = api.Reference.from_scores(
            {d: oof[d].astype(float).to_numpy() for d in dims},
            source=f"out-of-fold predictions on {len(oof)} AGIQA-3K images: the recipe of {scorer.name} "
            f"(`{recipe}`) trained {args.out_of_fold} times, each image predicted by the model that did not see "
            "its prompt (benchmarks/default_reference.py --out-of-fold)",
        )
        write_comparison(dataset, in_sample, oof, dims, args.out_of_fold, recipe)
        reference = held_out
    print(json.dumps(reference.summary(), indent=1))
    if args.limit:
        print(f"--limit given: {CARD} left unchanged")
        return
    write_reference(CARD, reference.to_card_value())
    print(f"wrote the reference of {len(samples)} images into {CARD}")


if __name__ == "__main__":
    main()
