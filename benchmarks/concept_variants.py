"""Variants of TSP-MGS's concept match ``M`` (PMI form), untrained, on the test sides of the 10 grouped splits.

    python benchmarks/concept_variants.py [--splits 10] [--load-note "what else ran"]

Issue 9 asked whether class mixtures of image regions ("what is where") or a different word-to-class mapping let
the concept match carry to new prompts better. Per split, ``M`` is computed from the training side's prior and
each variant's class distributions; on the test side the share of images whose ``M`` is lower under the prompt of
a random image of another prompt (the protocol's donors) is reported, with ``M``'s SRCC against the alignment MOS.

* ``image`` (what ``lite/tsp-mgs-cap-mix`` uses): the ImageNet classifier on the mean feature map, averaged over the
  image and its patch.
* ``locations, mean | max | top-9``: the classifier on each of the 12 x 12 feature-map positions of the whole image
  (``p_l(c)``); per word, ``log`` of the mean / maximum / top-9 mean over positions of ``sum_c p_l(c) q_w(c)``.
* ``regions 2x2 | 2x2 + 3x3, max``: the classifier on the mean feature of each region of a grid, plus the image;
  per word, the best region.
* ``T = ...``: the word-to-class softmax at another temperature (the model uses 0.1); ``1 - H`` weighs each word by
  one minus the normalised entropy of its class distribution (concrete words count more).

Writes ``benchmarks/results/concept_variants.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from prompt_terms import share_and_srcc, summarise, table_lines

from agiqa.configs import find_config
from agiqa.data.images import load_image
from agiqa.data.splits import load_splits, shipped_splits
from agiqa.train import TrainConfig
from agiqa.train.cache import EncoderMemo
from agiqa.train.probes import swap_donors
from agiqa.train.setup import load_training_data, prepare

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


@torch.no_grad()
def region_concepts(model, images) -> dict[str, torch.Tensor]:
    """Class probabilities of every feature-map position ``(N, P, C)`` and of 2x2 / 3x3 grid regions."""
    encoder = model.encoder
    classifier = encoder.image_tower._fc
    out = {"locations": [], "2x2": [], "3x3": []}
    with EncoderMemo(encoder, None):  # the protocol's cached encoder outputs
        for ref in images:
            pixels = model.preprocess(load_image(ref))
            tokens = encoder.encode_image(pixels if pixels.dim() == 4 else pixels.unsqueeze(0)).tokens[0]
            side = int(len(tokens) ** 0.5)
            out["locations"].append(classifier(tokens).softmax(-1).half())
            fmap = tokens.T.reshape(-1, side, side)
            for grid in (2, 3):
                cells = torch.nn.functional.adaptive_avg_pool2d(fmap, grid).flatten(1).T
                out[f"{grid}x{grid}"].append(classifier(cells).softmax(-1))
    return {k: torch.stack(v).float() for k, v in out.items()}


def pmi_match(per_word: torch.Tensor, words: torch.Tensor, mask: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """``mean_k [log per_word_k - log sum_c prior(c) q_wk(c)]`` over the unmasked (weighted) words."""
    base = torch.einsum("c,bkc->bk", prior, words).clamp_min(1e-6).log()
    return ((per_word.clamp_min(1e-6).log() - base) * mask).sum(1) / mask.sum(1).clamp_min(1e-6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data" / "agiqa3k")
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--load-note", default="", help="what else ran on the machine (written into the result)")
    args = parser.parse_args()
    cfg = TrainConfig.from_yaml(find_config("lite/tsp-mgs-cap-mix")).replace(
        data={"root": str(args.root)}, train={"progress": False}
    )
    dataset = load_training_data(cfg)
    setup = prepare(cfg, dataset)
    model, bank, table = setup.model.eval(), setup.bank, setup.table
    start = time.perf_counter()
    feats = bank.batch(torch.arange(len(table.images)))
    image = feats["concepts"].float()
    regions = region_concepts(model, table.images)
    log_q = feats["word_concepts"].float().clamp_min(1e-30).log()  # q_w(c) at T = 0.1, up to a constant
    words, mask = feats["word_concepts"].float(), feats["words_mask"].float()
    entropy = -(words * words.clamp_min(1e-12).log()).sum(-1) / np.log(words.shape[-1])

    def variants(rows: torch.Tensor, prompt_rows: torch.Tensor, prior: torch.Tensor) -> dict[str, torch.Tensor]:
        q, m = words[prompt_rows], mask[prompt_rows]
        per_position = torch.einsum("bpc,bkc->bpk", regions["locations"][rows], q)
        with_image = image[rows].unsqueeze(1)
        grid2 = torch.cat([with_image, regions["2x2"][rows]], 1)
        grid23 = torch.cat([grid2, regions["3x3"][rows]], 1)
        out = {
            "image": pmi_match(torch.einsum("bc,bkc->bk", image[rows], q), q, m, prior),
            "locations, mean": pmi_match(per_position.mean(1), q, m, prior),
            "locations, max": pmi_match(per_position.max(1).values, q, m, prior),
            "locations, top-9": pmi_match(per_position.topk(9, dim=1).values.mean(1), q, m, prior),
            "regions 2x2, max": pmi_match(torch.einsum("brc,bkc->brk", grid2, q).max(1).values, q, m, prior),
            "regions 2x2 + 3x3, max": pmi_match(torch.einsum("brc,bkc->brk", grid23, q).max(1).values, q, m, prior),
            "image, 1 - H": pmi_match(
                torch.einsum("bc,bkc->bk", image[rows], q), q, m * (1 - entropy[prompt_rows]), prior
            ),
        }
        for temperature in (0.05, 0.2):
            q_t = (log_q[prompt_rows] * (0.1 / temperature)).softmax(-1)
            out[f"image, T = {temperature}"] = pmi_match(torch.einsum("bc,bkc->bk", image[rows], q_t), q_t, m, prior)
        return out

    labels = table.labels["alignment"]
    per_split = []
    for i, split in enumerate(load_splits(shipped_splits("agiqa3k"), dataset)[: args.splits]):
        train_rows = [table.row[x] for x in split.train if x in table.row]
        test_rows = [table.row[x] for x in split.test if x in table.row]
        prior = image[train_rows].mean(0)
        rows = torch.as_tensor(test_rows)
        donors = torch.as_tensor(swap_donors(table.groups, test_rows, cfg.train.seed + i))
        own, other = variants(rows, rows, prior), variants(rows, donors, prior)
        per_split.append({n: share_and_srcc(own[n].numpy(), other[n].numpy(), labels[test_rows]) for n in own})
        print(f"split {i + 1}: " + ", ".join(f"{n} {v['prompt_swap_share']:.3f}" for n, v in per_split[-1].items()))
    seconds = time.perf_counter() - start
    names = list(per_split[0])
    summary = summarise(per_split, names)
    machine = f"CPU, {torch.get_num_threads()} thread(s), {os.cpu_count()} cores; {args.load_note or 'no note'}"
    doc = {"n_splits": len(per_split), "per_split": per_split, "summary": summary, "seconds": seconds}
    doc["machine"] = machine
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "concept_variants.json").write_text(json.dumps(doc, indent=2))
    lines = [
        "# Variants of the concept match M (PMI form), untrained (AGIQA-3K, test sides of the grouped splits)",
        "",
        f"`python benchmarks/concept_variants.py` — {len(per_split)} splits, {seconds:.0f} s, {machine}.",
        "Share: images whose M is lower under a random other test prompt than under their own (0.5 = coin toss).",
        "SRCC: M alone against the alignment MOS. `image` is the form the models use.",
        "",
        *table_lines(summary, names, "variant"),
    ]
    (RESULTS / "concept_variants.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
