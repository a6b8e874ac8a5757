"""AIGCIQA2023 (Wang et al., 2023): 2,400 images of 100 PartiPrompts by 6 generators, three MOS dimensions.

Two label sources: the merged ``AIGCIQA2023.csv`` (name, prompt, style, class, ``*_mos``, ``*_std``) or the
official ``DATA/MOS/mosz{1,2,3}.mat`` (key ``MOSz``) and ``DATA/STD/SD{1,2,3}.mat`` (key ``SD``), read in
the paper's order quality, authenticity, correspondence. Image ``i`` is ``Image/allimg/{i}.png``; row ``i``
of the header-less ``pic-index.xlsx`` gives its generator and ``PPP-K.png`` (prompt ``PPP`` of
``AIGCIQA2023_Prompts.xlsx``, image ``K``). The merged CSV agrees with that mapping on all 2,400 rows. Note
that the released std is on the raw rating scale (about 1) while the MOS is a rescaled z-score (about 27 to
73): do not compare the two.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io

from agiqa.data.datasets import DatasetError, register_dataset
from agiqa.data.readers.assemble import finish
from agiqa.data.readers.tables import drop_duplicates, parse_scores, read_label_table, row_where
from agiqa.data.sample import Dataset, Problem, Sample

DIMENSIONS = ("quality", "authenticity", "correspondence")
INDEX_NAME = re.compile(r"^(\d+)-(\d+)\.png$")


def _find(root: Path, name: str) -> Path | None:
    return next((p for p in (root / name, root / "DATA" / name) if p.is_file()), None)


def _read_mat(path: Path, key: str) -> np.ndarray:
    try:
        data = scipy.io.loadmat(path)
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path}: not a readable .mat file ({err})") from err
    if key not in data:
        found = ", ".join(k for k in data if not k.startswith("__"))
        raise DatasetError(f"{path}: missing variable {key!r} (found {found})")
    return np.asarray(data[key], dtype=float).reshape(-1)


def _index(root: Path, problems: list[Problem]) -> pd.DataFrame | None:
    """Per image index: generator, prompt, style, class, from pic-index.xlsx + AIGCIQA2023_Prompts.xlsx."""
    pic, prm = _find(root, "pic-index.xlsx"), _find(root, "AIGCIQA2023_Prompts.xlsx")
    if pic is None or prm is None:
        return None
    index = read_label_table(pic, header=False)
    prompts = read_label_table(prm, header=False)
    if index.shape[1] < 2 or prompts.shape[1] < 3:
        raise DatasetError(f"{pic} needs 2 columns (model, PPP-K.png) and {prm} 3 (style, class, prompt)")
    parts = index[1].astype(str).str.strip().str.extract(INDEX_NAME)
    rows = pd.to_numeric(parts[0], errors="coerce")
    bad = rows.isna() | (rows >= len(prompts))
    for i in index.index[bad]:
        problems.append(Problem("bad-name", row_where(pic, i, False), f"{index.at[i, 1]!r} is not PPP-K.png"))
    out = pd.DataFrame({"generator": index[0].astype(str).str.strip(), "prompt": None, "style": None, "class": None})
    good = rows[~bad].astype(int)
    for col, src in (("style", 0), ("class", 1), ("prompt", 2)):
        out.loc[~bad, col] = prompts[src].astype(str).str.strip().to_numpy()[good.to_numpy()]
    return out


def _from_csv(path: Path, problems: list[Problem]) -> pd.DataFrame:
    mos, std = [f"{d}_mos" for d in DIMENSIONS], [f"{d}_std" for d in DIMENSIONS]
    df = read_label_table(path, ["name", "prompt", *mos, *std])
    values, ok = parse_scores(df, mos + std, path, problems)
    ids = df["name"].astype(str).str.extract(r"^(\d+)\.png$")[0]
    for i in df.index[ids.isna()]:
        problems.append(Problem("bad-name", row_where(path, i), f"image name {df.at[i, 'name']!r} is not N.png"))
    rows = ok & ids.notna() & drop_duplicates(df["name"], path, problems)
    prompts = df["prompt"].astype(str)
    spaced = prompts[prompts != prompts.str.strip()]
    for text in spaced.unique():
        rows_of = spaced.index[spaced == text]
        problems.append(
            Problem(
                "whitespace",
                row_where(path, rows_of[0]),
                f"prompt {text!r} ({len(rows_of)} rows) has surrounding spaces; stripped",
            )
        )
    out = pd.DataFrame({"idx": pd.to_numeric(ids, errors="coerce"), "prompt": prompts.str.strip()})
    for c in ("style", "class"):
        if c in df.columns:
            out[c] = df[c]
    out[[*DIMENSIONS]] = values[mos].to_numpy()
    out[[f"{d}_std" for d in DIMENSIONS]] = values[std].to_numpy()
    return out[rows]


def _from_mat(root: Path, index: pd.DataFrame | None, problems: list[Problem]) -> pd.DataFrame:
    cols = {}
    for k, d in enumerate(DIMENSIONS, start=1):
        cols[d] = _read_mat(_mat(root, "MOS", f"mosz{k}.mat"), "MOSz")
        cols[f"{d}_std"] = _read_mat(_mat(root, "STD", f"SD{k}.mat"), "SD")
    lengths = {len(v) for v in cols.values()}
    if len(lengths) != 1:
        raise DatasetError(f"{root / 'DATA'}: the .mat files hold different numbers of images: {sorted(lengths)}")
    out = pd.DataFrame(cols)
    out.insert(0, "idx", np.arange(len(out)))
    if index is None:
        raise FileNotFoundError(
            f"pic-index.xlsx and AIGCIQA2023_Prompts.xlsx not found under {root} or {root / 'DATA'}: "
            "the .mat labels need them for the prompts"
        )
    out["prompt"] = index["prompt"].reindex(out.index)
    finite = np.isfinite(out[list(cols)].to_numpy()).all(axis=1)
    for i in np.flatnonzero(~finite):
        problems.append(Problem("bad-label", f"DATA/*.mat image {i}", "empty or non-finite MOS/SD; left out"))
    return out[finite]


def _mat(root: Path, sub: str, name: str) -> Path:
    path = root / "DATA" / sub / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the official layout has DATA/MOS/mosz{{1,2,3}}.mat, DATA/STD/SD*")
    return path


@register_dataset(
    "aigciqa2023",
    dimensions=DIMENSIONS,
    label_kind="mos",
    description="AIGCIQA2023: 2,400 images of 100 prompts, quality/authenticity/correspondence MOS",
)
def read_aigciqa2023(root: Path, *, source: str = "auto", check_images: bool = False) -> Dataset:
    """Read AIGCIQA2023 labels; images are ``root/Image/allimg/{i}.png``.

    Args:
        root: Dataset folder (label files at the top or under ``DATA/``).
        source: ``csv`` (merged ``AIGCIQA2023.csv``), ``mat`` (official ``DATA/`` files) or ``auto``
            (csv when present).
        check_images: Open every image header and report missing or unreadable files.
    """
    problems: list[Problem] = []
    csv = _find(root, "AIGCIQA2023.csv")
    if source == "auto":
        source = "csv" if csv is not None else "mat"
    if source not in ("csv", "mat"):
        raise ValueError(f"source={source!r}: choose 'csv', 'mat' or 'auto'")
    index = _index(root, problems)
    if source == "csv":
        if csv is None:
            raise FileNotFoundError(f"AIGCIQA2023.csv not found under {root} or {root / 'DATA'}")
        table = _from_csv(csv, problems)
    else:
        table = _from_mat(root, index, problems)
    samples = []
    for row in table.itertuples(index=False):
        i = int(row.idx)
        meta: dict[str, object] = {"index": i}
        if index is not None and i < len(index):
            ref = index.iloc[i]
            meta |= {"generator": ref["generator"], "style": ref["style"], "class": ref["class"]}
            if source == "csv" and ref["prompt"] is not None and ref["prompt"] != row.prompt:
                problems.append(
                    Problem(
                        "mismatch",
                        f"image {i}",
                        f"CSV prompt {row.prompt!r} != prompts xlsx {ref['prompt']!r}",
                    )
                )
        if not isinstance(row.prompt, str) or not row.prompt:
            problems.append(Problem("missing-prompt", f"image {i}", "no prompt for this image; left out"))
            continue
        samples.append(
            Sample(
                image=str(root / "Image" / "allimg" / f"{i}.png"),
                prompt=row.prompt,
                image_id=f"{i}.png",
                labels={d: float(getattr(row, d)) for d in DIMENSIONS},
                stds={d: float(getattr(row, f"{d}_std")) for d in DIMENSIONS},
                meta=meta,
            )
        )
    return finish("aigciqa2023", root, samples, problems, DIMENSIONS, check_images)
