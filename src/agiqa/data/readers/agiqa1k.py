"""AGIQA-1K (Zhang et al., 2023): ``file/`` + ``AIGC_MOS_Zscore.xlsx`` (Image, Prompt, MOS) or
``AIGC_all.csv``.

Image names follow ``{model}_{subject}_{action}_{place}_{style}.jpg``, each (model, subject, action) with
all four place x style variants. The real label files break this: the xlsx lists one name twice and lacks
another, the CSV misspells one. Those rows are reported, never repaired by guessing: duplicates are left
out, a name that does not follow the scheme is left out with the closest missing name as a hint, and an
absent variant is reported.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pandas as pd

from agiqa.data.datasets import register_dataset
from agiqa.data.readers.assemble import finish
from agiqa.data.readers.tables import drop_duplicates, first_dir, parse_scores, read_label_table, row_where
from agiqa.data.sample import Dataset, Problem, Sample

NAME = re.compile(r"^(?P<triple>[A-Za-z]+_\d+_\d+)_(?P<place>[01])_(?P<style>[01])\.jpg$")
FILES = {"zscore": ("AIGC_MOS_Zscore.xlsx", "Image", "MOS"), "all": ("AIGC_all.csv", "Image", "Score")}


def _check_names(names: pd.Series, path: Path, problems: list[Problem]) -> pd.Series:
    """Report names off the scheme (left out) and scheme variants with no row; return the rows to keep."""
    parts = names.str.extract(NAME)
    expected = {f"{t}_{p}_{s}.jpg" for t in parts["triple"].dropna() for p in "01" for s in "01"}
    absent = sorted(expected - set(names))
    for name in absent:
        problems.append(Problem("missing-label", path.name, f"no row for {name}, expected by the naming scheme"))
    ok = parts["triple"].notna()
    for i in ok.index[~ok]:
        hint = difflib.get_close_matches(str(names[i]), absent, n=1)
        fix = f"; did you mean {hint[0]!r}? correct the file" if hint else ""
        problems.append(
            Problem(
                "bad-name",
                row_where(path, i),
                f"{names[i]!r} is not {{model}}_a_b_c_d.jpg; row left out{fix}",
            )
        )
    return ok


@register_dataset(
    "agiqa1k",
    dimensions=("quality",),
    label_kind="mos",
    description="AGIQA-1K: 1,080 images (deepai, dreamStudio), quality MOS (file/ + AIGC_MOS_Zscore.xlsx)",
)
def read_agiqa1k(root: Path, *, labels: str = "auto", check_images: bool = False) -> Dataset:
    """Read AGIQA-1K labels and point at the images in ``root/file/``.

    Args:
        root: Folder holding the label file(s) and ``file/``.
        labels: ``zscore`` (the xlsx, with prompts), ``all`` (the CSV; prompts then come from the xlsx
            when it is present) or ``auto`` (the xlsx when present).
        check_images: Open every image header and report missing or unreadable files.
    """
    if labels == "auto":
        labels = "zscore" if (root / FILES["zscore"][0]).is_file() else "all"
    if labels not in FILES:
        raise ValueError(f"labels={labels!r}: choose 'zscore', 'all' or 'auto'")
    fname, name_col, mos_col = FILES[labels]
    path = root / fname
    if not path.is_file():
        raise FileNotFoundError(f"AGIQA-1K label file {path} not found (labels={labels!r})")
    df = read_label_table(path, [name_col, mos_col] + (["Prompt"] if labels == "zscore" else []))
    problems: list[Problem] = []
    names = df[name_col].astype("string").str.strip()
    scores, ok = parse_scores(df, [mos_col], path, problems)
    keep = ok & names.notna() & _check_names(names.fillna(""), path, problems) & drop_duplicates(names, path, problems)
    prompts = _prompts(root, df if labels == "zscore" else None, problems)
    image_dir = first_dir(root, ["file"])
    samples = []
    for i in df.index[keep]:
        name = str(names[i])
        if name not in prompts and prompts:
            problems.append(Problem("missing-prompt", row_where(path, i), f"no prompt for {name} in the xlsx"))
        samples.append(
            Sample(
                image=str(image_dir / name),
                prompt=prompts.get(name, ""),
                image_id=name,
                labels={"quality": float(scores.at[i, mos_col])},
                meta={"generator": name.split("_", 1)[0], "row": int(i) + 2, "label_file": fname},
            )
        )
    return finish("agiqa1k", root, samples, problems, ("quality",), check_images)


def _prompts(root: Path, zscore: pd.DataFrame | None, problems: list[Problem]) -> dict[str, str]:
    """Image name -> prompt from the xlsx (the CSV has no prompts)."""
    if zscore is None:
        path = root / FILES["zscore"][0]
        if not path.is_file():
            problems.append(Problem("missing-prompt", str(root), f"{path.name} not found: samples have no prompt"))
            return {}
        zscore = read_label_table(path, ["Image", "Prompt"])
    rows = zscore.dropna(subset=["Image", "Prompt"])
    return dict(zip(rows["Image"].astype(str).str.strip(), rows["Prompt"].astype(str).str.strip(), strict=True))
