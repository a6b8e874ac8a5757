"""The README's protocol table, from the protocol results in ``benchmarks/results/``.

    python benchmarks/readme_table.py            # print the table
    python benchmarks/readme_table.py --write    # replace it in README.md (between its two marker comments)

One row per protocol result named in ``ROWS`` (a result not on disk is left out); figures are the mean ± std over
the splits run (one figure where one split was run). Rerun after ``benchmarks/run_protocol.py``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
README = REPO / "README.md"
BEGIN, END = "<!-- protocol table: python benchmarks/readme_table.py --write -->", "<!-- end of protocol table -->"

ROWS = [
    (
        "**agiqa-lite (default)**: the mean of two members, the recipes of tsp-mgs-cap-mix-cca and tsp-mgs-ml-cmq-h0 "
        "below, each trained on its own loss and mismatch margin and kept at its epoch best by validation SRCC + "
        "prompt swap (`train.keep_best_by: srcc+swap`)",
        "tsp-mgs-ens-cca",
    ),
    (
        "the same, the second member's caption match in the whole text space (the recipe of tsp-mgs-cap-mix): "
        "the default before",
        "tsp-mgs-ens-swap",
    ),
    ("the same, each member kept at its epoch best by validation SRCC alone: an earlier default", "tsp-mgs-ens"),
    (
        "the default's two members; quality their mean, alignment the second's (the form of an earlier default)",
        "tsp-mgs-ens-q",
    ),
    (
        "TSP-MGS ml, alignment read through the concept (PMI) and caption terms, mixed before training: "
        "an earlier default",
        "tsp-mgs-cap-mix",
    ),
    (
        "the same, the caption match in a CCA basis of the text space (size and ridge chosen on the training rows)",
        "tsp-mgs-cap-mix-cca",
    ),
    ("the same, a learned weight per term", "tsp-mgs-cap"),
    ('the same, alignment levels "A photo that ... matches the prompt."', "tsp-mgs-cap-generic"),
    (
        "TSP-MGS ml + concept match, quality prompt-free, mismatch (random): an earlier default",
        "tsp-mgs-ml-cmq-h0",
    ),
    ("the same, stronger mismatch (2 random negatives per image, margin 1.0)", "tsp-mgs-ml-cmq-m1"),
    ("TSP-MGS ml + concept match + quality prompt-free, mismatch (half sharing a word)", "tsp-mgs-ml-cmq"),
    ("TSP-MGS ml + concept match, mismatch (half sharing a word)", "tsp-mgs-ml-cm"),
    ("TSP-MGS ml, before mismatch", "tsp-mgs-ml"),
    ("TSP-MGS, plain lite encoder", "tsp-mgs"),
    ("ridge over pooled lite features (baseline)", "ridge"),
    ("MINT-IQA, epoch kept by validation SRCC + prompt swap", "mint-iqa"),
    ("MINT-IQA, mismatch weight 5, margin 1.0, learning rate 1e-3, epoch kept by SRCC", "mint-iqa-mm5"),
    ("TSP-MGS trained on same-prompt pairs (pairwise CE)", "tsp-mgs-pairs"),
    ("TSP-MGS + Stable Preference (same pairs)", "tsp-mgs-sp"),
    ("IP-IQA", "ip-iqa"),
    ("PrefIQA (scale fixed; same-prompt pairs only: read its pairwise accuracy)", "prefiqa"),
    ("PrefIQA + Stable Preference (the same pairs)", "prefiqa-sp"),
]
HEADER = [
    "| model | splits | quality SRCC | alignment SRCC | alignment pairwise | prompt swap | drop | "
    "swap, training prompts | note |",
    "|---|---|---|---|---|---|---|---|---|",
]


def row(label: str, method: str) -> str | None:
    """One table row, or None when the method has no result."""
    path = RESULTS / f"protocol_{method}-lite-agiqa3k.json"
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    n = doc["n_splits"]
    table = {(r["dimension"], r["metric"]): (r["mean"], r["std"]) for r in doc["table"]}

    def figure(key: tuple[str, str], percent: bool = False) -> str | None:
        if key not in table or table[key][0] is None:
            return None
        mean, std = table[key]
        if percent:
            return f"{100 * mean:.1f}%" + (f" ± {100 * (std or 0):.1f}" if n > 1 else "")
        return f"{mean:.3f}" + (f" ± {std or 0:.3f}" if n > 1 else "")

    notes = []
    swap = figure(("alignment", "prompt_swap_share"), percent=True)
    if method == "ridge":
        swap = "n/a"
        notes.append("no prompt swap")
    elif swap is None:
        swap = f"{100 * doc['shuffled_prompts']['alignment_share_lower']:.0f}% (split 0)"
        notes.append("before mismatch")
    drop = figure(("alignment", "prompt_swap_drop"))
    if drop is None and doc.get("shuffled_prompts"):
        drop = f"{doc['shuffled_prompts']['alignment_drop']:.2f} (split 0)"
    if n == 1:
        notes.append("split 0 only")
    cells = [
        label,
        str(n),
        figure(("quality", "srcc")) or "n/a",
        figure(("alignment", "srcc")) or "n/a",
        figure(("alignment", "pairwise_acc")) or "n/a",
        swap,
        drop or "n/a",
        figure(("alignment", "prompt_swap_share_seen"), percent=True) or "–",
        ", ".join(notes),
    ]
    return "| " + " | ".join(cells) + " |"


def table() -> str:
    """The whole table (header and the rows with results)."""
    return "\n".join(HEADER + [r for label, m in ROWS if (r := row(label, m)) is not None])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="replace the table in README.md")
    args = parser.parse_args()
    text = table()
    if not args.write:
        print(text)
        return
    readme = README.read_text()
    pattern = re.compile(re.escape(BEGIN) + r"\n.*?\n" + re.escape(END), re.DOTALL)
    if not pattern.search(readme):
        raise SystemExit(f"{README}: no table markers; put the lines {BEGIN!r} and {END!r} around the table")
    README.write_text(pattern.sub(lambda _: f"{BEGIN}\n{text}\n{END}", readme, count=1))
    print(f"wrote the table into {README}")


if __name__ == "__main__":
    main()
