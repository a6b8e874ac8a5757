"""Explanations of scores: structured (every model) and the MINT-IQA instruction branch (``instruct``).

* ``explain(model, image, prompt)`` — levels, alignment by phrase, quality by region (``structured``), with
  ``write_explanation`` saving the JSON, the text report and the region map drawn over the image (``heatmap``).
* ``agiqa.explain.instruct`` — MINT-IQA's trainable instruction-aware branch: questions and answers in words.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from agiqa.data.images import ImageLoadError, ImageRef, describe_ref, load_image
from agiqa.explain.heatmap import overlay, save_heatmap
from agiqa.explain.structured import (
    LEVELS,
    Explanation,
    explain_image,
    level_of,
    range_thresholds,
)
from agiqa.models.base import QualityModel

__all__ = [
    "LEVELS",
    "ExplainError",
    "Explanation",
    "explain",
    "explain_image",
    "level_of",
    "open_image",
    "overlay",
    "range_thresholds",
    "save_heatmap",
    "write_explanation",
]


class ExplainError(ValueError):
    """Bad input to an explanation (unreadable image, missing prompt, unanswerable question)."""


def open_image(image: ImageRef) -> tuple[Image.Image, str]:
    """Decode an image with ``agiqa.data.images.load_image``; returns it (RGB) and a display name.

    Raises:
        ExplainError: The file is missing or cannot be decoded (the message says why).
    """
    try:
        return load_image(image), describe_ref(image)
    except ImageLoadError as err:
        raise ExplainError(str(err)) from None


def explain(
    model: QualityModel,
    image: ImageRef,
    prompt: str = "",
    *,
    model_name: str | None = None,
    grid: int = 3,
    n_phrases: int = 11,
    weakest: int = 1,
) -> Explanation:
    """Structured explanation of ``model``'s scores for one image (see ``agiqa.explain.structured``).

    Args:
        model: Any agiqa model (``agiqa.models.registry.create_model(name)`` or a scorer's model).
        image: Path, encoded bytes or PIL image.
        prompt: The prompt the image was generated from; without it only the dimensions that need no prompt are
            explained (an error when every dimension needs one).
        model_name: Name recorded in the explanation (default: the model card's name).
        grid: Cells per side of the region grid (0 skips the region map).
        n_phrases: ``n`` of PrefIQA's prompt segmentation.
        weakest: How many of the lowest-scored phrases to name.

    Raises:
        ExplainError: Unreadable image, or no prompt for a model whose every dimension needs one.
    """
    prompt = prompt or ""
    needing = [d.name for d in model.dimensions if d.needs_prompt]
    name = model_name or model.name
    if len(needing) == len(model.dimensions) and not prompt.strip():
        raise ExplainError(f"model {name!r} scores {', '.join(needing)} against the prompt; give the prompt")
    decoded, image_name = open_image(image)
    return explain_image(
        model,
        decoded,
        prompt,
        model_name=name,
        image_name=image_name,
        grid=grid,
        n_phrases=n_phrases,
        weakest=weakest,
    )


def write_explanation(explanation: Explanation, image: ImageRef, out_dir: str | Path) -> dict[str, Path]:
    """Write ``explanation.json``, ``explanation.txt`` and (with a region map) ``heatmap.png`` into ``out_dir``.

    Returns:
        The written files by kind (``json``, ``text``, ``heatmap``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    if explanation.regions:
        files["heatmap"] = save_heatmap(explanation, open_image(image)[0], out / "heatmap.png")
    files["json"] = out / "explanation.json"
    files["json"].write_text(json.dumps(explanation.to_dict(), indent=2, ensure_ascii=False) + "\n")
    files["text"] = out / "explanation.txt"
    files["text"].write_text(explanation.to_text())
    return files
