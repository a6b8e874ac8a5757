"""Structured explanation of a model's scores: levels, alignment by phrase, quality by region.

Model-agnostic definitions (they use only the ``QualityModel`` contract, so every model gets them):

* **Levels.** Each score is named on the five-level scale ``bad, poor, fair, good, perfect`` by equal fifths of
  its ``ScoreSpec`` range ``[low, high]`` (scores outside the range take the end level); for a dimension where
  lower is better the scale is reversed. See ``range_thresholds``. Phrases, regions and the heat-map's colours
  (``agiqa.explain.heatmap``) use the same absolute levels as the whole image's score.
* **Alignment by phrase.** The prompt is segmented as in PrefIQA (eq. 1-2, ``segment_prompt``, the padding copies
  of the whole prompt removed) and each phrase is scored *as if it were the prompt* through the model's alignment
  dimension (``alignment``, else ``correspondence``, else the first dimension that needs a prompt). A prompt of a
  single phrase has no weakest phrase, and the report says so.
* **Quality by region.** The image is cut into a ``grid`` x ``grid`` grid of equal cells (default 3 x 3); each
  cell is preprocessed like a whole image and scored through the quality dimension (``quality``, else
  ``authenticity``, else the first dimension that needs no prompt, else the first one) with the full prompt. A
  cell is scored as a picture of its own, without the context of the whole, so cells often score below the
  whole image; the report says so when every cell does.
* **No prompt.** The dimensions that need no prompt are explained; the others are reported as not scored.

All of it costs one image-tower pass (the image and its cells in one batch), one text-tower pass (the prompt and
its unique phrases in one batch) and one ``forward_head`` over the combined batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from PIL import Image

from agiqa.models.base import QualityModel
from agiqa.models.card import ScoreSpec
from agiqa.models.prompts import segment_prompt

LEVELS = ("bad", "poor", "fair", "good", "perfect")
NOT_SCORED = "not scored"
"""The level of a dimension that needs the prompt when there is none."""
PHRASE_DIMENSIONS = ("alignment", "correspondence")
REGION_DIMENSIONS = ("quality", "authenticity")
ROW_NAMES = {1: ("",), 2: ("top", "bottom"), 3: ("top", "middle", "bottom")}
COL_NAMES = {1: ("",), 2: ("left", "right"), 3: ("left", "centre", "right")}


def range_thresholds(spec: ScoreSpec | DimensionScore) -> list[float]:
    """The four boundaries between the five levels: equal fifths of ``[spec.low, spec.high]``, ascending."""
    return [spec.low + (spec.high - spec.low) * k / len(LEVELS) for k in range(1, len(LEVELS))]


def level_index(value: float, thresholds: Sequence[float], higher_is_better: bool = True) -> int:
    """Index into ``LEVELS`` of ``value`` given ascending ``thresholds`` (a value on a boundary goes up)."""
    index = sum(value >= t for t in thresholds)
    return index if higher_is_better else len(LEVELS) - 1 - index


def level_of(score: float, spec: ScoreSpec | DimensionScore) -> str:
    """Level word of a score on its dimension's range (see module docstring)."""
    return LEVELS[level_index(score, range_thresholds(spec), spec.higher_is_better)]


def level_bands(spec: ScoreSpec | DimensionScore) -> dict[str, str]:
    """The score band of each level on the dimension's range: ``{"bad": "< 1", "poor": "1-2", ...}``."""
    edges = [f"{t:.3g}" for t in range_thresholds(spec)]
    bands = [f"< {edges[0]}", *(f"{a}-{b}" for a, b in zip(edges, edges[1:], strict=False)), f">= {edges[-1]}"]
    order = LEVELS if spec.higher_is_better else LEVELS[::-1]
    return {level: bands[order.index(level)] for level in LEVELS}


def badness(score: float, spec: ScoreSpec | DimensionScore) -> float:
    """A number that grows as the score gets worse, whatever the dimension's direction."""
    return -score if spec.higher_is_better else score


@dataclass
class DimensionScore:
    """One score of the whole image with its level."""

    name: str
    score: float
    level: str
    low: float
    high: float
    higher_is_better: bool
    uncertainty: float | None = None


@dataclass
class PhraseScore:
    """A prompt phrase scored as the prompt through the alignment dimension."""

    phrase: str
    score: float
    level: str


@dataclass
class RegionScore:
    """A grid cell scored through the quality dimension; ``box`` is (left, top, right, bottom) in pixels."""

    name: str
    row: int
    col: int
    box: tuple[int, int, int, int]
    score: float
    level: str


@dataclass
class Explanation:
    """Everything ``explain`` found, serialisable with ``to_dict`` and readable with ``to_text``."""

    model: str
    prompt: str
    image: str
    dimensions: list[DimensionScore]
    phrase_dimension: str | None = None
    phrases: list[PhraseScore] = field(default_factory=list)
    weakest_phrases: list[str] = field(default_factory=list)
    region_dimension: str | None = None
    grid: int = 0
    regions: list[RegionScore] = field(default_factory=list)
    worst_region: str | None = None
    heatmap: str | None = None
    level_rule: str = "equal fifths of each dimension's [low, high] range, the same for phrases and regions"
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain mapping for JSON."""
        return asdict(self)

    def _region_lines(self, spec: DimensionScore | None) -> list[str]:
        lines = ["", f"Quality by region ({self.region_dimension}, {self.grid}x{self.grid} grid, levels as above):"]
        for row in range(self.grid):
            cells = [r for r in self.regions if r.row == row]
            lines.append("  " + "  ".join(f"{r.score:8.3f} {r.level:<8}" for r in cells))
        worst = next(r for r in self.regions if r.name == self.worst_region)
        where = f" (heat-map: {self.heatmap})" if self.heatmap else ""
        lines.append(f"  -> the worst region is {worst.name} ({worst.score:.3f}, {worst.level}){where}.")
        if spec is not None and all(badness(r.score, spec) > badness(spec.score, spec) for r in self.regions):
            lines.append(
                f"  Every cell scores below the whole image ({spec.score:.3f}, {spec.level}): a cell is scored as a "
                "picture of its own, without the context of the whole, so compare the cells with each other."
            )
        if spec is not None and not spec.higher_is_better:
            lines.append("  (lower is better on this dimension)")
        return lines

    def to_text(self) -> str:
        """A short human-readable report."""
        specs = {d.name: d for d in self.dimensions}
        lines = [f"Model: {self.model}", f"Image: {self.image}", f"Prompt: {self.prompt!r}", "", "Scores:"]
        for d in self.dimensions:
            unc = f" +/- {d.uncertainty:.3g}" if d.uncertainty is not None else ""
            direction = "higher is better" if d.higher_is_better else "lower is better"
            lines.append(f"  {d.name:<15} {d.score:8.3f}{unc}  {d.level:<8} (range {d.low:g}..{d.high:g}, {direction})")
        if len(self.phrases) == 1:
            p = self.phrases[0]
            lines += [
                "",
                f"Alignment by phrase ({self.phrase_dimension}): the prompt is a single phrase, so no phrase is "
                f"weaker than another; the whole prompt scores {p.score:.3f} ({p.level}).",
            ]
        elif self.phrases:
            lines += ["", f"Alignment by phrase ({self.phrase_dimension}, each phrase scored as the prompt):"]
            lines += [f"  {p.score:8.3f}  {p.level:<8} {p.phrase!r}" for p in self.phrases]
            for phrase in self.weakest_phrases:
                p = next(x for x in self.phrases if x.phrase == phrase)
                verdict = "is weakly depicted" if p.level in LEVELS[:3] else "is the least well depicted"
                lines.append(f"  -> {phrase!r} {verdict} ({p.score:.3f}, {p.level}).")
        if self.regions:
            lines += self._region_lines(specs.get(self.region_dimension or ""))
        lines += ["", f"Levels ({', '.join(LEVELS)}): {self.level_rule}."]
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def pick_dimension(dimensions: Sequence[ScoreSpec], preferred: Sequence[str], needs_prompt: bool) -> ScoreSpec | None:
    """The first of ``preferred`` the model has, else the first dimension whose ``needs_prompt`` matches."""
    by_name = {d.name: d for d in dimensions}
    for name in preferred:
        if name in by_name:
            return by_name[name]
    return next((d for d in dimensions if d.needs_prompt == needs_prompt), None)


def unique_phrases(prompt: str, n: int = 11) -> list[str]:
    """``segment_prompt(prompt, n)`` without the padding copies of the whole prompt and without duplicates.

    A prompt with a single piece keeps that piece, so every prompt gives at least one phrase.
    """
    phrases = list(dict.fromkeys(p for p in segment_prompt(prompt, n) if p))
    whole = prompt.strip()
    return [p for p in phrases if p != whole] or [whole]


def grid_boxes(width: int, height: int, grid: int) -> list[tuple[int, int, int, int, str]]:
    """``grid`` x ``grid`` cells covering the image, row by row: (left, top, right, bottom, name)."""
    boxes = []
    for row in range(grid):
        for col in range(grid):
            box = (col * width // grid, row * height // grid, (col + 1) * width // grid, (row + 1) * height // grid)
            boxes.append((*box, region_name(row, col, grid)))
    return boxes


def region_name(row: int, col: int, grid: int) -> str:
    """``top-left``, ``centre`` ... for grids up to 3 x 3, ``row 2, column 4`` (1-based) beyond."""
    if grid > 3:
        return f"row {row + 1}, column {col + 1}"
    r, c = ROW_NAMES[grid][row], COL_NAMES[grid][col]
    if r == "middle" and c == "centre":
        return "centre"
    if r == "middle":
        return f"middle-{c}"
    return "-".join(x for x in (r, c) if x) or "whole image"


def _repeat(features: dict[str, torch.Tensor], index: int, count: int) -> dict[str, torch.Tensor]:
    return {k: v[index : index + 1].expand(count, *v.shape[1:]) for k, v in features.items()}


def _cat(*parts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


@torch.no_grad()
def explain_image(
    model: QualityModel,
    image: Image.Image,
    prompt: str,
    *,
    model_name: str = "",
    image_name: str = "",
    grid: int = 3,
    n_phrases: int = 11,
    weakest: int = 1,
) -> Explanation:
    """Explain the scores ``model`` gives ``image`` for ``prompt`` (see module docstring).

    Args:
        model: Any agiqa model.
        image: Decoded image.
        prompt: The prompt the image was generated from (may be empty for models that need none).
        model_name: Name written into the explanation.
        image_name: Image path or id written into the explanation.
        grid: Cells per side of the region grid (0 to skip the region map).
        n_phrases: ``n`` of PrefIQA's segmentation.
        weakest: How many of the lowest-scored phrases to name.
    """
    if grid < 0 or grid > 8:
        raise ValueError(f"grid={grid}: use 0 (no region map) to 8 cells per side")
    image = image.convert("RGB")
    dims = list(model.dimensions)
    has_prompt = bool(prompt.strip())
    scorable = [d for d in dims if has_prompt or not d.needs_prompt]
    phrase_spec = pick_dimension(dims, PHRASE_DIMENSIONS, needs_prompt=True)
    region_spec = pick_dimension(scorable, REGION_DIMENSIONS, needs_prompt=False) if grid else None
    if grid and region_spec is None and scorable:
        region_spec = scorable[0]
    phrases = unique_phrases(prompt, n_phrases) if phrase_spec is not None and prompt.strip() else []
    boxes = grid_boxes(*image.size, grid) if region_spec is not None else []

    device = next(model.parameters()).device
    crops = [image] + [image.crop(b[:4]) for b in boxes]
    pixels = torch.stack([model.preprocess(c) for c in crops]).to(device)
    img = model.image_features(pixels)
    txt = model.text_features([prompt, *phrases])
    features = _cat(
        {**_repeat(img, 0, 1 + len(phrases)), **txt},
        {**{k: v[1:] for k, v in img.items()}, **_repeat(txt, 0, len(boxes))},
    )
    out = {k: v.float().cpu() for k, v in model.forward_head(features).items()}

    explanation = Explanation(model=model_name, prompt=prompt, image=image_name, dimensions=[])
    for spec in dims:
        std = out.get(f"{spec.name}_std")
        score = float(out[spec.name][0]) if spec in scorable else math.nan
        explanation.dimensions.append(
            DimensionScore(
                spec.name,
                score,
                level_of(score, spec) if spec in scorable else NOT_SCORED,
                spec.low,
                spec.high,
                spec.higher_is_better,
                float(std[0]) if std is not None else None,
            )
        )
    if phrase_spec is not None and phrases:
        scores = out[phrase_spec.name][1 : 1 + len(phrases)].tolist()
        explanation.phrase_dimension = phrase_spec.name
        explanation.phrases = [
            PhraseScore(p, s, level_of(s, phrase_spec)) for p, s in zip(phrases, scores, strict=False)
        ]
        order = sorted(range(len(phrases)), key=lambda i: badness(scores[i], phrase_spec), reverse=True)
        explanation.weakest_phrases = [phrases[i] for i in order[:weakest]] if len(phrases) > 1 else []
    elif phrase_spec is None:
        explanation.notes.append("the model has no prompt-dependent dimension, so there is no alignment by phrase")
    else:
        unscored = ", ".join(d.name for d in dims if d not in scorable)
        explanation.notes.append(f"no prompt: {unscored} not scored, and there is no alignment by phrase")
    if region_spec is not None:
        scores = out[region_spec.name][1 + len(phrases) :].tolist()
        explanation.region_dimension, explanation.grid = region_spec.name, grid
        explanation.regions = [
            RegionScore(b[4], i // grid, i % grid, tuple(b[:4]), s, level_of(s, region_spec))
            for i, (b, s) in enumerate(zip(boxes, scores, strict=False))
        ]
        explanation.worst_region = max(explanation.regions, key=lambda r: badness(r.score, region_spec)).name
        if region_spec.name not in REGION_DIMENSIONS:
            explanation.notes.append(f"the model has no quality dimension; regions are scored by {region_spec.name}")
    return explanation
