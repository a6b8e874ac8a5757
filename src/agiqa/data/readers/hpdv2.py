"""HPD v2 (Wu et al., 2023): ``test.json`` = ``[{prompt, image_path[], rank[], ...}]`` with images in
``test/``.

``rank`` is lower-is-better like ImageReward's ranking; a file numbered from 0 is shifted to start at 1 so
that ``Sample.rank`` keeps "1 is best". The benchmark prompt suites ``benchmark/{style}.json`` are read by
``read_hpd_benchmark_prompts``.
"""

from __future__ import annotations

import json
from pathlib import Path

from agiqa.data.datasets import DatasetError, register_dataset
from agiqa.data.readers.assemble import finish
from agiqa.data.readers.imagereward import ranked_groups
from agiqa.data.readers.tables import find_file, first_dir, read_label_table
from agiqa.data.sample import Dataset, Problem

BENCHMARK_STYLES = ("anime", "concept-art", "paintings", "photo", "drawbench")


@register_dataset(
    "hpdv2",
    dimensions=("preference",),
    label_kind="rank",
    description="HPD v2 test: ranked images per prompt -> untied pairs (test.json + test/)",
)
def read_hpdv2(root: Path, *, check_images: bool = False) -> Dataset:
    """Read ``root/test.json``; ``image_path`` entries are relative to ``root/test/`` (or ``root``).

    Args:
        root: Folder holding ``test.json`` and ``test/``.
        check_images: Open every image header and report missing or unreadable files.
    """
    path = find_file(root, ["test.json"], "HPD v2 test.json")
    entries = read_label_table(path, ["prompt", "image_path", "rank"])
    ranks = [r for rs in entries["rank"] if isinstance(rs, list) for r in rs if isinstance(r, int)]
    if ranks and min(ranks) == 0:
        entries["rank"] = [[r + 1 for r in rs] if isinstance(rs, list) else rs for rs in entries["rank"]]
    entries["group"] = [f"{i:05d}" for i in range(len(entries))]
    problems: list[Problem] = []
    samples, pairs = ranked_groups(
        entries, path, first_dir(root, ["test"]), ("group", "prompt", "image_path", "rank"), problems
    )
    return finish("hpdv2", root, samples, problems, (), check_images, pairs)


def read_hpd_benchmark_prompts(root: str | Path, styles: tuple[str, ...] = BENCHMARK_STYLES) -> dict[str, list[str]]:
    """Prompt suites of the HPD v2 benchmark, ``root/benchmark/{style}.json`` (a JSON list of strings each).

    Args:
        root: HPD v2 folder (the one holding ``benchmark/``), or the ``benchmark`` folder itself.
        styles: Which suites to read.

    Returns:
        Style -> prompts, in file order.
    """
    root = Path(root)
    folder = root if (root / f"{styles[0]}.json").is_file() else root / "benchmark"
    suites = {}
    for style in styles:
        path = folder / f"{style}.json"
        if not path.is_file():
            raise FileNotFoundError(f"HPD v2 benchmark prompts {path} not found (styles: {', '.join(styles)})")
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list) or not all(isinstance(p, str) for p in data):
            raise DatasetError(f"{path}: expected a JSON list of prompt strings")
        suites[style] = data
    return suites
