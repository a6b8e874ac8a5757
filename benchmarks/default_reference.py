"""Write the reference distribution of the shipped default model into its card.

    python benchmarks/default_reference.py [--root ../shared/data/agiqa3k] [--work DIR] [--threads 1]

Scores every image of the default's training set (all of AGIQA-3K in ``--root``: the default was trained on all
2,386 images, 10% of the prompts held out only to pick the best epoch) with the shipped model through the public
scoring API, takes the 101 quantiles p0..p100 of each dimension (``agiqa.api.Reference.from_scores``, the function
``agiqa train`` uses for every run folder's card) and writes them under ``reference:`` in
``src/agiqa/model_configs/agiqa-lite.yaml``, leaving the rest of the card as it is. The scores are kept in
``--work`` (resumable: an interrupted run continues where it stopped). Rerun it whenever the default's weights
change (``benchmarks/train_default.py`` writes the training rows' reference of a new run; this script replaces
it with the one over every training image).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data" / "agiqa3k")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "agiqa" / "default_reference")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="first N images only (a quick check; not written)")
    args = parser.parse_args()
    import torch

    from agiqa import api

    torch.set_num_threads(args.threads)
    dataset = api.load_dataset("agiqa3k", args.root)
    samples = dataset.samples[: args.limit] if args.limit else dataset.samples
    scorer = api.load(api.DEFAULT_MODEL)
    args.work.mkdir(parents=True, exist_ok=True)
    out = args.work / f"scores_{len(samples)}.csv"
    if not out.exists():
        images, prompts, names = [s.image for s in samples], [s.prompt for s in samples], [s.image_id for s in samples]
        scorer.score_to_file(images, prompts, out, names=names)
    scores = api.read_table(out)
    failed = scores["error"].str.strip() != ""
    if failed.any():
        raise SystemExit(f"{int(failed.sum())} images failed (see {out}); a reference needs every training image")
    dims = [d.name for d in scorer.dimensions]
    reference = api.Reference.from_scores(
        {d: scores[d].astype(float).to_numpy() for d in dims},
        source=f"predictions of {scorer.name} on its {len(samples)} training images (all of AGIQA-3K's data.csv)",
    )
    print(json.dumps(reference.summary(), indent=1))
    if args.limit:
        print(f"--limit given: {CARD} left unchanged")
        return
    write_reference(CARD, reference.to_card_value())
    print(f"wrote the reference of {len(samples)} images into {CARD}")


if __name__ == "__main__":
    main()
