"""Structured explanations: levels, phrases and regions named consistently with the scores, files written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from agiqa.encoders.base import DualEncoder, EncoderOutput
from agiqa.explain import ExplainError, explain, write_explanation
from agiqa.explain.structured import level_of, range_thresholds, region_name, unique_phrases
from agiqa.models.base import QualityModel
from agiqa.models.card import ScoreSpec


class ToyEncoder(DualEncoder):
    """Image = 8x8 thumbnail; text = its character count. Transparent enough to know the right answer."""

    name, embed_dim, image_token_dim, text_token_dim, image_size, max_text_tokens = "toy", 1, 3, 1, 8, 64

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def preprocess(self, image):
        arr = np.asarray(image.convert("RGB").resize((8, 8)), dtype=np.float32) / 255.0
        return torch.from_numpy(arr).permute(2, 0, 1)

    def encode_image(self, pixel_values):
        tokens = pixel_values.flatten(2).transpose(1, 2)
        return EncoderOutput(tokens=tokens, pooled=tokens.mean(dim=(1, 2)).unsqueeze(1))

    def encode_text(self, texts):
        lengths = torch.tensor([[float(len(t))] for t in texts])
        return EncoderOutput(tokens=lengths.unsqueeze(1), pooled=lengths)

    def freeze(self, fraction, tower="both"):
        pass


class ToyModel(QualityModel):
    """quality = 5 x brightness; alignment = 5 / (1 + characters / 10) (longer phrases score lower)."""

    def forward_head(self, features):
        out = {"quality": 5 * features["image_pooled"][:, 0], "alignment": 5 / (1 + features["text_pooled"][:, 0] / 10)}
        if self.dimensions[0].name == "blur":
            out = {"blur": -out["quality"]}
        return out


DIMS = [ScoreSpec("quality", 0, 5), ScoreSpec("alignment", 0, 5, needs_prompt=True)]
PROMPT = "a red fox, holding an umbrella in the rain, snow"


def _image(dark_cell: tuple[int, int], grid: int = 3, size: int = 96) -> Image.Image:
    arr = np.full((size, size, 3), 200, dtype=np.uint8)
    r, c = dark_cell
    step = size // grid
    arr[r * step : (r + 1) * step, c * step : (c + 1) * step] = 20
    return Image.fromarray(arr)


def test_levels_are_equal_fifths_of_the_range():
    spec = ScoreSpec("quality", 0, 5)
    assert range_thresholds(spec) == [1, 2, 3, 4]
    assert [level_of(x, spec) for x in (-1, 0.5, 1.0, 2.5, 3.99, 4.2, 9)] == [
        "bad",
        "bad",
        "poor",
        "fair",
        "good",
        "perfect",
        "perfect",
    ]
    assert level_of(0.5, ScoreSpec("blur", 0, 5, higher_is_better=False)) == "perfect"


def test_unique_phrases_drop_padding():
    assert unique_phrases(PROMPT) == ["a red fox", "holding an umbrella in the rain", "snow"]
    assert unique_phrases("one piece") == ["one piece"]


@pytest.mark.parametrize("dark", [(0, 0), (1, 2), (2, 1)])
def test_worst_region_and_weakest_phrase_are_the_lowest_scored(dark):
    model = ToyModel(ToyEncoder(), DIMS)
    exp = explain(model, _image(dark), PROMPT)
    worst = min(exp.regions, key=lambda r: r.score)
    assert exp.worst_region == worst.name == region_name(*dark, 3)
    assert (worst.row, worst.col) == dark
    weakest = min(exp.phrases, key=lambda p: p.score)
    assert exp.weakest_phrases == [weakest.phrase] == ["holding an umbrella in the rain"]
    assert len(exp.regions) == 9 and [d.name for d in exp.dimensions] == ["quality", "alignment"]
    assert exp.dimensions[1].score == pytest.approx(5 / (1 + len(PROMPT) / 10))
    assert "'holding an umbrella in the rain' is weakly depicted" in exp.to_text()


def test_lower_is_better_dimension_names_the_highest_as_worst():
    model = ToyModel(ToyEncoder(), [ScoreSpec("blur", -5, 0, higher_is_better=False)])
    exp = explain(model, _image((1, 1), grid=2), "", grid=2)
    assert exp.region_dimension == "blur" and not exp.phrases
    worst = max(exp.regions, key=lambda r: r.score)
    assert exp.worst_region == worst.name == "bottom-right"


def test_batched_scores_match_one_by_one():
    model = ToyModel(ToyEncoder(), DIMS)
    image = _image((0, 2))
    exp = explain(model, image, PROMPT)
    for region in exp.regions:
        single = model(model.preprocess(image.crop(region.box)).unsqueeze(0), [PROMPT])
        assert region.score == pytest.approx(float(single["quality"][0]), abs=1e-5)


def test_files_are_written(tmp_path):
    model = ToyModel(ToyEncoder(), DIMS)
    image = _image((2, 2))
    exp = explain(model, image, PROMPT)
    files = write_explanation(exp, image, tmp_path)
    data = json.loads(files["json"].read_text())
    assert data["worst_region"] == "bottom-right" and data["heatmap"] == str(tmp_path / "heatmap.png")
    with Image.open(files["heatmap"]) as png:
        assert png.format == "PNG" and png.size[0] > 100
    assert "worst region is bottom-right" in files["text"].read_text()


def test_bad_input_is_a_clear_error(tmp_path):
    model = ToyModel(ToyEncoder(), DIMS)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(ExplainError, match="broken.jpg"):
        explain(model, broken, PROMPT)
    with pytest.raises(ExplainError, match="missing.png"):
        explain(model, tmp_path / "missing.png", PROMPT)
    prompted = ToyModel(ToyEncoder(), [ScoreSpec("alignment", 0, 5, needs_prompt=True)])
    with pytest.raises(ExplainError, match="give the prompt"):
        explain(prompted, _image((0, 0)), "  ")


def test_without_a_prompt_the_prompt_free_dimensions_are_explained():
    exp = explain(ToyModel(ToyEncoder(), DIMS), _image((1, 1)), "")
    quality, alignment = exp.dimensions
    assert quality.level != "not scored" and len(exp.regions) == 9 and exp.worst_region == "centre"
    assert alignment.level == "not scored" and np.isnan(alignment.score) and not exp.phrases
    assert "no prompt: alignment not scored" in exp.to_text()


def test_a_single_phrase_prompt_has_no_weakest_phrase():
    exp = explain(ToyModel(ToyEncoder(), DIMS), _image((0, 0)), "a red fox")
    assert [p.phrase for p in exp.phrases] == ["a red fox"] and exp.weakest_phrases == []
    text = " ".join(exp.to_text().split())
    assert "the prompt is a single phrase, so no phrase is weaker than another" in text
    assert "weakly depicted" not in text


def _dark_image(size: int = 96) -> Image.Image:
    """Nearly black, with a slightly brighter centre cell (the image of the issue: the overlay hid it)."""
    arr = np.full((size, size, 3), 12, dtype=np.uint8)
    arr[size // 3 : 2 * size // 3, size // 3 : 2 * size // 3] = 40
    return Image.fromarray(arr)


def test_heatmap_colours_are_the_absolute_levels_and_the_picture_stays_visible():
    from agiqa.explain.heatmap import LEVEL_COLOURS, OUTLINE, WIDTH, cell_box, overlay

    image = _dark_image()
    exp = explain(ToyModel(ToyEncoder(), DIMS), image, PROMPT)
    # every region is "bad" on the 0-5 scale (brightness <= 40/255), whatever the spread of their scores
    assert {r.level for r in exp.regions} == {"bad"} and exp.dimensions[0].level == "bad"
    drawn = overlay(exp, image)
    scale = WIDTH / image.width
    assert drawn.width == WIDTH and drawn.height > image.height * scale
    original = np.asarray(image.resize((WIDTH, WIDTH), Image.Resampling.BICUBIC), dtype=int)
    pixels = np.asarray(drawn, dtype=int)
    for region in exp.regions:
        left, top, right, bottom = cell_box(region.box, scale)
        mid_y = (top + bottom) // 2
        assert tuple(pixels[mid_y, left + OUTLINE // 2]) == LEVEL_COLOURS[region.level]  # the outline: its level
        # inside the cell, below its label, the picture is drawn as it is (nothing laid over it)
        inside = pixels[mid_y : bottom - 2 * OUTLINE, left + 3 * OUTLINE : right - 3 * OUTLINE]
        assert (
            np.abs(inside - original[mid_y : bottom - 2 * OUTLINE, left + 3 * OUTLINE : right - 3 * OUTLINE]).max() <= 1
        )
    bright = _image((0, 0))  # light grey (5 x 200/255 = 3.9: "good") with one dark ("bad") cell
    exp2 = explain(ToyModel(ToyEncoder(), DIMS), bright, PROMPT)
    drawn2 = np.asarray(overlay(exp2, bright), dtype=int)
    for region in exp2.regions:
        left, top, right, bottom = cell_box(region.box, WIDTH / bright.width)
        assert tuple(drawn2[(top + bottom) // 2, left + OUTLINE // 2]) == LEVEL_COLOURS[region.level]
    assert {r.level for r in exp2.regions} == {"bad", "good"}


def test_report_says_when_every_cell_scores_below_the_whole():
    class Cropped(ToyModel):  # a model that penalises crops: each cell scores below the whole image
        def forward_head(self, features):
            out = super().forward_head(features)
            out["quality"] = out["quality"] - torch.arange(len(out["quality"])).clamp(max=1) * 2.0
            return out

    exp = explain(Cropped(ToyEncoder(), DIMS), _image((0, 0)), PROMPT)
    assert "Every cell scores below the whole image" in " ".join(exp.to_text().split())
    fair = explain(ToyModel(ToyEncoder(), DIMS), _image((0, 0)), PROMPT)
    assert "Every cell scores below" not in fair.to_text()


def test_cli_writes_json_text_and_heatmap(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import agiqa.api
    from agiqa.cli import app

    monkeypatch.setattr(agiqa.api, "load", lambda name, **kwargs: agiqa.api.Scorer(ToyModel(ToyEncoder(), DIMS)))
    image = tmp_path / "img.png"
    _image((0, 1)).save(image)
    runner = CliRunner()
    result = runner.invoke(app, ["explain", str(image), "--prompt", PROMPT, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "the worst region is top-centre" in result.output
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"explanation.json", "explanation.txt", "heatmap.png"}
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG but not really")
    result = runner.invoke(app, ["explain", str(broken), "--prompt", PROMPT])
    assert result.exit_code == 1 and "broken.png" in result.output


def test_scorer_explain_delegates():
    from agiqa.api import Scorer

    exp = Scorer(ToyModel(ToyEncoder(), DIMS)).explain(_image((2, 0)), PROMPT, grid=3)
    assert exp.worst_region == "bottom-left" and exp.model == "ToyModel"
