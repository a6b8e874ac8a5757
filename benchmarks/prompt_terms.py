"""How well each prompt-reading term of TSP-MGS carries to new prompts, alone and untrained, on the 10 splits.

    python benchmarks/prompt_terms.py [--splits 10] [--load-note "what else ran"]
    python benchmarks/prompt_terms.py --config lite/tsp-mgs-cap-mix-cca --stem prompt_terms_cca   # C in a CCA basis
    python benchmarks/prompt_terms.py --config lite/tsp-mgs-cap-mix-cca --variant lite2 --stem prompt_terms_cca_lite2

Per split, the closed-form parts of ``lite/tsp-mgs-cap`` (the concept prior and the caption map, ``prefit``) are
fitted on the training side; then, on the test side (prompts never seen), each term is computed under the image's
own prompt and under the prompt of a random image of another prompt (the donors of the protocol's shuffled-prompt
check, same seed), and the share of images whose term is lower under the other prompt is reported (0.5 = a coin
toss), with the term's SRCC against the alignment MOS. Terms: ``M`` the concept match, ``M (PMI)`` its form
divided by the average training image's, ``C`` the caption match, and ``M (PMI) + C`` in level units (each
standardised over the training rows). No gradient step is taken: this is what a trained head can build on.
A second table scans the mix ``M (PMI) + r C`` over ``MATCH_MIXES``, with the ``r`` that ``match_mix: fitted``
picks on each split's training rows (``TSPMGS.fit_mix``) and what that choice gives on the test side.
Writes ``benchmarks/results/<stem>.{md,json}`` (default ``prompt_terms``); ``--config`` names the config whose
closed-form parts are fitted (default ``lite/tsp-mgs-cap``; its ``caption_basis`` is used); ``--variant lite2`` runs
them on another EfficientNet-Lite tower.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from agiqa.configs import find_config
from agiqa.data.splits import load_splits, shipped_splits
from agiqa.eval import metrics as M
from agiqa.models.tsp_mgs import MATCH_MIXES
from agiqa.train import TrainConfig
from agiqa.train.mismatch import prompt_swap_share
from agiqa.train.probes import swap_donors
from agiqa.train.setup import load_training_data, prepare

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
TERMS = ("M", "M (PMI)", "C", "M (PMI) + C")


def terms(model, feats: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Every term of ``TERMS`` for a batch of features (the model's closed-form parts already fitted)."""
    with torch.no_grad():
        plain = model.concept_log_match(feats["concepts"], feats["word_concepts"], feats["words_mask"])
        pmi, caption = model.match_terms(feats)  # level units: the same order, so the same shares and SRCC
    return {n: t.numpy() for n, t in zip(TERMS, (plain, pmi, caption, pmi + caption), strict=True)}


def share_and_srcc(own: np.ndarray, other: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """A term's prompt-swap share (``own`` against ``other``) and its SRCC against ``labels``."""
    return {"prompt_swap_share": prompt_swap_share(own, other), "srcc": float(M.srcc(own, labels))}


def summarise(per_split: list[dict], names: list[str]) -> dict[str, dict[str, tuple[float, float]]]:
    """Mean and std over the splits of each named term's share and SRCC."""
    return {
        n: {
            k: (float(np.mean([s[n][k] for s in per_split])), float(np.std([s[n][k] for s in per_split])))
            for k in ("prompt_swap_share", "srcc")
        }
        for n in names
    }


def table_lines(summary: dict[str, dict[str, tuple[float, float]]], names: list[str], first: str) -> list[str]:
    """A markdown table of ``summarise``'s figures, one row per name under the column ``first``."""
    lines = [f"| {first} | prompt-swap share | SRCC vs alignment MOS |", "|---|---|---|"]
    for n in names:
        (share, share_sd), (srcc, srcc_sd) = summary[n]["prompt_swap_share"], summary[n]["srcc"]
        lines.append(f"| {n} | {100 * share:.1f}% ± {100 * share_sd:.1f} | {srcc:.3f} ± {srcc_sd:.3f} |")
    return lines


def percent(values: list[float]) -> str:
    """Mean ± std of shares, in percent."""
    return f"{100 * np.mean(values):.1f}% ± {100 * np.std(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data" / "agiqa3k")
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument(
        "--config", default="lite/tsp-mgs-cap", help="config whose concept and caption terms are fitted"
    )
    parser.add_argument("--stem", default="prompt_terms", help="name of the result files")
    parser.add_argument("--variant", help="the lite image tower instead of the config's (lite0, lite1, lite2)")
    parser.add_argument("--load-note", default="", help="what else ran on the machine (written into the result)")
    args = parser.parse_args()
    cfg = TrainConfig.from_yaml(find_config(args.config)).replace(
        data={"root": str(args.root)}, train={"progress": False}
    )
    if args.variant:
        cfg = cfg.replace(model={"encoder_args": {"variant": args.variant}})
    dataset = load_training_data(cfg)
    setup = prepare(cfg, dataset)
    model, bank, table = setup.model, setup.bank, setup.table
    everything = torch.arange(len(table.images))
    feats = bank.batch(everything)
    labels = table.labels["alignment"]
    per_split = []
    start = time.perf_counter()
    for i, split in enumerate(load_splits(shipped_splits("agiqa3k"), dataset)[: args.splits]):
        train_rows = [table.row[x] for x in split.train if x in table.row]
        test_rows = [table.row[x] for x in split.test if x in table.row]
        fit = torch.zeros(len(everything), dtype=torch.bool)
        fit[train_rows] = True
        captions = model.prefit(feats, fit, list(table.groups))["caption"]
        chosen = model.fit_mix(feats, fit, list(table.groups), captions[fit])
        donors = swap_donors(table.groups, test_rows, cfg.train.seed + i)  # the protocol's shuffled-prompt check
        rows = torch.as_tensor(test_rows)
        own = terms(model, bank.batch(rows))
        other = terms(model, bank.batch(rows, prompt_rows=bank.prompt_row[torch.as_tensor(donors)]))
        mixes = {}
        for r in MATCH_MIXES:
            mix_own, mix_other = own["M (PMI)"] + r * own["C"], other["M (PMI)"] + r * other["C"]
            mixes[str(r)] = share_and_srcc(mix_own, mix_other, labels[test_rows])
        per_split.append(
            {n: share_and_srcc(own[n], other[n], labels[test_rows]) for n in TERMS}
            | {"caption_penalty": float(model.caption.penalty), "caption_choice": model.caption.chosen}
            | {"mixes": mixes, "fitted_mix": chosen}
        )
        print(f"split {i + 1}: " + ", ".join(f"{n} {per_split[-1][n]['prompt_swap_share']:.3f}" for n in TERMS))
    seconds = time.perf_counter() - start
    summary = summarise(per_split, list(TERMS))
    machine = f"CPU, {torch.get_num_threads()} thread(s), {os.cpu_count()} cores; {args.load_note or 'no note'}"
    doc = {"n_splits": len(per_split), "per_split": per_split, "summary": summary}
    doc |= {"seconds": seconds, "machine": machine}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.stem}.json").write_text(json.dumps(doc, indent=2))
    variant = f" --variant {args.variant}" if args.variant else ""
    lines = [
        "# Prompt-reading terms alone, untrained (AGIQA-3K, test sides of the grouped splits)",
        "",
        f"`python benchmarks/prompt_terms.py --config {args.config}{variant} --stem {args.stem}` — "
        f"{len(per_split)} splits, "
        f"{seconds:.0f} s, {machine}.",
        "Share: images whose term is lower under a random other test prompt than under their own (0.5 = coin toss).",
        "SRCC: the term alone against the alignment MOS.",
        "",
        *table_lines(summary, list(TERMS), "term"),
    ]
    fitted = [s["fitted_mix"] for s in per_split]
    fitted_share = [s["mixes"][str(s["fitted_mix"])]["prompt_swap_share"] for s in per_split]
    lines += [
        "",
        "## The mix `M (PMI) + r C`",
        "",
        f"`r` picked on each split's training rows by `match_mix: fitted`: {', '.join(map(str, fitted))}; "
        f"its prompt-swap share on the test side: {percent(fitted_share)}.",
        "",
        "| r | prompt-swap share | SRCC vs alignment MOS |",
        "|---|---|---|",
    ]
    for r in MATCH_MIXES:
        share = [s["mixes"][str(r)]["prompt_swap_share"] for s in per_split]
        srcc = [s["mixes"][str(r)]["srcc"] for s in per_split]
        lines.append(f"| {r} | {percent(share)} | {np.mean(srcc):.3f} ± {np.std(srcc):.3f} |")
    (RESULTS / f"{args.stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
