"""``run_bench``: score every generator's images of a prompt suite and compare the generators.

Steps: read the suite (``agiqa.bench.suites``), place the images (``agiqa.bench.layout``), score them through the
scorer's resumable ``score_to_file`` into ``OUT/scores.csv`` (an interrupted bench resumes when run again), then
compare (``agiqa.bench.stats``) and write ``bench.md``, ``bench.json`` and ``bench.png`` (``agiqa.bench.output``).
``summarise_bench`` does the last two steps for a score table made elsewhere (MOS, cross-validated predictions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from agiqa.bench.layout import BenchLayout, folder_layout, table_layout
from agiqa.bench.output import write_outputs
from agiqa.bench.stats import BenchStats, compare_generators
from agiqa.bench.suites import PromptSuite, load_suite
from agiqa.io import read_table

if TYPE_CHECKING:
    from agiqa.api.scoring import Scorer

SCORES_FILE = "scores.csv"


@dataclass(frozen=True)
class BenchResult:
    """What a bench computed and wrote.

    Attributes:
        stats: Means, intervals, ranks and win rates.
        scores: The per-image score table (``image, prompt, generator, prompt_id, <dimensions>, error, warning``).
        files: ``bench.md``, ``bench.json``, ``bench.png`` and ``scores.csv`` by kind.
        problems: Images left out and why.
        failed: Images that could not be scored.
    """

    stats: BenchStats
    scores: pd.DataFrame
    files: dict[str, Path]
    problems: list[str]
    failed: int


def bench_layout(root: Path, suite: PromptSuite, mapping: str | Path | None = None) -> BenchLayout:
    """The images of ``root`` placed by file name, or by the ``mapping`` table.

    Raises:
        ValueError: No image maps to a prompt of the suite.
    """
    ids = suite.table["id"].tolist()
    layout = table_layout(root, Path(mapping), ids) if mapping is not None else folder_layout(root, ids)
    if not layout.images:
        found = "; ".join(layout.problems) or "no images found"
        raise ValueError(f"{root}: no image maps to a prompt id of suite {suite.name} ({found})")
    return layout


def summarise_bench(
    scores: pd.DataFrame,
    dimensions: dict[str, bool],
    suite: PromptSuite,
    out: str | Path,
    title: str,
    meta: dict[str, Any] | None = None,
    notes: list[str] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[BenchStats, dict[str, Path]]:
    """Compare the generators of a score table and write the tables and the chart into ``out``.

    Args:
        scores: One row per image with ``generator``, ``prompt_id`` and a column per dimension.
        dimensions: ``{dimension: higher_is_better}``.
        suite: The prompts (its grouping columns give the per-group rows).
        out: Folder for ``bench.md``, ``bench.json``, ``bench.png``.
        title: First line of the markdown and the chart.
        meta: Extra keys for ``bench.json``.
        notes: Lines listed under the title (and in the JSON).
        n_resamples: Bootstrap resamples per interval.
        seed: Bootstrap seed.
    """
    groups = suite.table.set_index("id")[list(suite.groups)] if suite.groups else None
    stats = compare_generators(scores, dimensions, groups, n_resamples=n_resamples, seed=seed)
    files = write_outputs(stats, Path(out), title, {"suite": suite.name, **(meta or {})}, list(notes or []))
    return stats, files


def run_bench(
    scorer: Scorer,
    root: str | Path,
    prompts: str | Path,
    out: str | Path,
    *,
    mapping: str | Path | None = None,
    groups: list[str] | None = None,
    batch_size: int = 16,
    workers: int | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    overwrite: bool = False,
    reuse_scores: bool = False,
    on_start: Callable[[int, int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> BenchResult:
    """Compare the generators under ``root`` on the suite ``prompts`` (see module docstring).

    Args:
        scorer: The loaded model (``agiqa.load``).
        root: Folder with one sub-folder per generator.
        prompts: A shipped suite name or a suite file (``agiqa.bench.suites``).
        out: Output folder (created).
        mapping: Table ``generator, image, prompt_id`` instead of matching file names.
        groups: Grouping columns of the suite to report on (default: all of them).
        batch_size: Images per model call.
        workers: Decoding processes (None: the scorer's default).
        n_resamples: Bootstrap resamples per interval.
        seed: Bootstrap seed.
        overwrite: Score again over an existing ``OUT/scores.csv``.
        reuse_scores: Take an existing ``OUT/scores.csv`` of the same images and prompts instead of scoring.
        on_start: ``(total, already_done)`` once scoring starts (``score_to_file``).
        on_progress: Items scored since the last call.

    Raises:
        FileExistsError: ``OUT/scores.csv`` exists and neither ``overwrite`` nor ``reuse_scores`` is given.
        ValueError: Bad suite or mapping, no image matched, or reused scores of other images.
    """
    root, out = Path(root), Path(out)
    suite = load_suite(prompts, groups)
    layout = bench_layout(root, suite, mapping)
    text = suite.prompts
    names = [i.name for i in layout.images]
    texts = [text[i.prompt_id] for i in layout.images]
    out.mkdir(parents=True, exist_ok=True)
    path = out / SCORES_FILE
    if reuse_scores and path.exists():
        scores = read_table(path)
        if scores["image"].tolist() != names or scores["prompt"].tolist() != texts:
            raise ValueError(f"{path} scores other images or prompts than this bench; score again with overwrite")
    else:
        extra = pd.DataFrame(
            {"generator": [i.generator for i in layout.images], "prompt_id": [i.prompt_id for i in layout.images]}
        )
        scorer.score_to_file(
            [i.file for i in layout.images], texts, path, names=names, batch_size=batch_size, workers=workers,
            overwrite=overwrite, on_start=on_start, on_progress=on_progress, extra=extra,
        )  # fmt: skip
        scores = read_table(path)
    failed = int((scores["error"].str.strip() != "").sum())
    dims = {d.name: d.higher_is_better for d in scorer.dimensions}
    notes = [
        f"model {scorer.name}; suite {suite.name} ({len(suite)} prompts); {len(names)} images of "
        f"{len(layout.generators)} generators under {root}",
        "mean = mean over prompts of each generator's per-prompt mean; interval = percentile bootstrap over prompts",
        *([f"{failed} images could not be scored (see the error column of scores.csv)"] if failed else []),
        *layout.problems,
    ]
    meta = {"model": scorer.name, "root": str(root), "n_images": len(names), "generators": layout.generators}
    title = f"Generators compared on {Path(suite.name).name} by {scorer.name}"
    stats, files = summarise_bench(scores, dims, suite, out, title, meta, notes, n_resamples, seed)
    return BenchResult(stats, scores, {**files, "scores": path}, layout.problems, failed)
