"""AGIQA-3K (Li et al., TCSVT 2024): ``data.csv`` with quality and alignment MOS and std, plus the JPEGs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from agiqa.data.datasets import register_dataset
from agiqa.data.readers.assemble import finish
from agiqa.data.readers.tables import drop_duplicates, find_file, first_dir, parse_scores, read_label_table
from agiqa.data.sample import Dataset, Problem, Sample

SCORES = {"quality": ("mos_quality", "std_quality"), "alignment": ("mos_align", "std_align")}


@register_dataset(
    "agiqa3k",
    dimensions=("quality", "alignment"),
    label_kind="mos",
    description="AGIQA-3K: 2,982 images of 300 prompts, quality and alignment MOS (data.csv + images/)",
)
def read_agiqa3k(root: Path, *, check_images: bool = False) -> Dataset:
    """Read ``root/data.csv``; images are looked up in ``root/images/`` when it exists, else next to the CSV.

    Args:
        root: Folder holding ``data.csv``.
        check_images: Open every image header and report missing or unreadable files.
    """
    path = find_file(root, ["data.csv"], "AGIQA-3K label file")
    columns = [c for pair in SCORES.values() for c in pair]
    df = read_label_table(path, ["name", "prompt", *columns])
    image_dir = first_dir(root, ["images"])
    problems: list[Problem] = []
    values, ok = parse_scores(df, columns, path, problems)
    keep = ok & drop_duplicates(df["name"], path, problems)
    extra = [c for c in ("adj1", "adj2", "style") if c in df.columns]
    rows = df.loc[keep, ["name", "prompt", *extra]].to_dict("records")
    scores = values.loc[keep].to_dict("records")
    samples = []
    for i, row, score in zip(df.index[keep], rows, scores, strict=True):
        name = str(row["name"])
        meta: dict[str, object] = {c: row[c] for c in extra if not pd.isna(row[c])}
        samples.append(
            Sample(
                image=str(image_dir / name),
                prompt=str(row["prompt"]).strip(),
                image_id=name,
                labels={dim: score[mos] for dim, (mos, _) in SCORES.items()},
                stds={dim: score[std] for dim, (_, std) in SCORES.items()},
                meta=meta | {"generator": name.rsplit("_", 1)[0], "row": int(i) + 2},
            )
        )
    return finish("agiqa3k", root, samples, problems, SCORES, check_images)
