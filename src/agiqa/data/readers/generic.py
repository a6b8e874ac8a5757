"""Your own data: a table of ``image, prompt`` and score columns, or a folder of images generated from one
prompt.

Table rules: ``image`` paths are relative to the table's folder (absolute paths are kept); every other
column whose non-empty values are mostly numbers is a label dimension named after the column, ``{dim}_std``
columns are its std, ``group`` (optional) overrides the same-prompt group and ``rank`` the rank; remaining
columns go to ``Sample.meta``. Pass ``dimensions=[...]`` to choose the score columns explicitly.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from agiqa.data.datasets import DatasetError, register_dataset
from agiqa.data.files import IMAGE_EXTENSIONS
from agiqa.data.readers.assemble import finish
from agiqa.data.readers.tables import drop_duplicates, parse_scores, read_label_table, row_where
from agiqa.data.sample import Dataset, Problem, Sample

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".xlsx")
RESERVED = ("image", "prompt", "group", "rank")


def _score_columns(df: pd.DataFrame) -> list[str]:
    """Columns (other than the reserved and ``*_std`` ones) whose non-empty values are mostly numbers."""
    dims = []
    for col in df.columns:
        if col in RESERVED or str(col).endswith("_std"):
            continue
        filled = df[col].dropna()
        filled = filled[filled.astype(str).str.strip() != ""]
        if len(filled) and pd.to_numeric(filled, errors="coerce").notna().mean() > 0.5:
            dims.append(str(col))
    return dims


def _read_table(path: Path, dimensions: list[str] | None, problems: list[Problem]) -> list[Sample]:
    df = read_label_table(path, ["image", "prompt", *(dimensions or [])])
    dims = dimensions if dimensions is not None else _score_columns(df)
    stds = [d for d in dims if f"{d}_std" in df.columns]
    ranked = ["rank"] if "rank" in df.columns else []
    values, ok = parse_scores(df, dims + [f"{d}_std" for d in stds] + ranked, path, problems)
    images = df["image"].astype("string").str.strip()
    for i in df.index[images.isna() | (images == "")]:
        problems.append(Problem("bad-label", row_where(path, i), "empty image path; row left out"))
    keep = ok & images.notna() & (images != "") & drop_duplicates(images, path, problems)
    meta_cols = [c for c in df.columns if c not in RESERVED and c not in dims and c not in {f"{d}_std" for d in stds}]
    samples = []
    for i in df.index[keep]:
        prompt = "" if pd.isna(df.at[i, "prompt"]) else str(df.at[i, "prompt"]).strip()
        if not prompt:
            problems.append(Problem("missing-prompt", row_where(path, i), "empty prompt; kept without one"))
        group = df.at[i, "group"] if "group" in df.columns else None
        samples.append(
            Sample(
                image=str(path.parent / str(images[i])),
                prompt=prompt,
                image_id=str(images[i]),
                labels={d: float(values.at[i, d]) for d in dims},
                stds={d: float(values.at[i, f"{d}_std"]) for d in stds},
                group=None if group is None or pd.isna(group) else str(group),
                rank=int(values.at[i, "rank"]) if ranked else None,
                meta={"row": int(i) + 2} | {str(c): df.at[i, c] for c in meta_cols if not pd.isna(df.at[i, c])},
            )
        )
    return samples


@register_dataset(
    "generic",
    dimensions=(),
    label_kind="mos",
    description="Your own data: CSV/JSONL of image, prompt, score columns, or an image folder + prompt=...",
)
def read_generic(
    root: Path, *, prompt: str | None = None, dimensions: list[str] | None = None, check_images: bool = False
) -> Dataset:
    """Read a table file, the one table inside a folder, or (with ``prompt``) every image in a folder.

    Args:
        root: A ``.csv/.tsv/.jsonl/.json/.xlsx`` table, or a folder.
        prompt: Treat ``root`` as a folder of unlabelled images all generated from this prompt.
        dimensions: Score columns to use (default: every mostly-numeric column).
        check_images: Open every image header and report missing or unreadable files.
    """
    problems: list[Problem] = []
    if prompt is not None:
        if not root.is_dir():
            raise NotADirectoryError(f"prompt= needs a folder of images; {root} is a file")
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not files:
            raise DatasetError(f"{root}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        samples = [Sample(str(p), prompt, p.relative_to(root).as_posix()) for p in files]
        return finish("generic", root, samples, problems, (), check_images)
    table = root
    if root.is_dir():
        tables = sorted(p for p in root.iterdir() if p.suffix.lower() in TABLE_SUFFIXES)
        if len(tables) != 1:
            raise DatasetError(
                f"{root}: expected exactly one table ({', '.join(TABLE_SUFFIXES)}), found {len(tables)}; "
                "pass the table file as root, or prompt=... for a folder of images"
            )
        table = tables[0]
    samples = _read_table(table, dimensions, problems)
    dims = dimensions if dimensions is not None else list(dict.fromkeys(d for s in samples for d in s.labels))
    return finish("generic", root, samples, problems, dims, check_images)
