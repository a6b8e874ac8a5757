"""Question-answer pairs from labels (MINT-IQA Fig. 5) and VQA accuracy (eq. 6-10)."""

from __future__ import annotations

import pytest

from agiqa.data.sample import Sample
from agiqa.explain.instruct.qa import LevelScale, build_qa, fit_level_scales, level_question, qa_pairs
from agiqa.explain.instruct.vqa import VQARecord, distill, majority_baseline, match, random_baseline, vqa_accuracy


def _samples(n: int = 10) -> list[Sample]:
    return [
        Sample(
            image=f"{i}.png",
            prompt="a corgi",
            image_id=f"{i}.png",
            labels={"quality": float(i), "alignment": float(n - i)},
        )
        for i in range(n)
    ]


def test_quintile_scale_puts_a_fifth_in_each_level():
    scales = fit_level_scales(_samples(10))
    levels = [scales["quality"].level(float(i)) for i in range(10)]
    assert levels == ["bad", "bad", "poor", "poor", "fair", "fair", "good", "good", "perfect", "perfect"]
    assert LevelScale.from_range(0, 5).thresholds == (1, 2, 3, 4)


def test_pairs_follow_fig5():
    scales = fit_level_scales(_samples(10))
    pairs = qa_pairs(_samples(10)[1], scales)
    kinds = {(p.dimension, p.kind) for p in pairs}
    assert kinds == {
        ("quality", "level"),
        ("quality", "assess"),
        ("correspondence", "level"),
        ("correspondence", "assess"),
        ("correspondence", "aligned"),
        ("all", "scores"),
    }
    q = next(p for p in pairs if p.kind == "level" and p.dimension == "quality")
    assert q.question == "How is the quality of the image?" and q.level == "bad"
    assert q.answer == "The quality of the image is bad. The quality score is 1.00."
    c = next(p for p in pairs if p.kind == "aligned")
    assert c.level == "perfect" and c.answer == "The image and its prompt are fully consistent."


def test_fine_grained_annotation_gives_why_question():
    s = Sample(
        image="x.png",
        prompt="three green peppers",
        image_id="x",
        labels={"correspondence": 1.0},
        meta={"annotations": {"correspondence": "There are four peppers, not three."}},
    )
    pairs = qa_pairs(s, {"correspondence": LevelScale.from_range(0, 5)})
    why = [p for p in pairs if p.kind == "why"]
    assert len(why) == 1 and why[0].answer == "There are four peppers, not three."
    assert pairs[0].answer.endswith("There are four peppers, not three.")


def test_real_datasets_have_qa_pairs(agiqa3k_root, labels_root):
    from agiqa.data import load_dataset

    for name, root, dims in [
        ("agiqa3k", agiqa3k_root, {"quality", "correspondence"}),
        ("aigciqa2023", labels_root / "aigciqa2023", {"quality", "authenticity", "correspondence"}),
    ]:
        data = load_dataset(name, root)
        samples = data.samples[:200]
        pairs = build_qa(samples, fit_level_scales(samples))
        level_pairs = [p for p in pairs if p.kind == "level"]
        assert {p.dimension for p in level_pairs} == dims
        assert len(level_pairs) == len(samples) * len(dims)


def test_unknown_dimension_question_is_refused():
    with pytest.raises(ValueError, match="no question about 'aesthetics'"):
        level_question("aesthetics")


def test_distill_and_match():
    assert distill("The quality is not good, rather poor overall.") == ["poor"]
    assert match("Excellent image, good details") == "perfect"
    assert match("I cannot tell.") is None
    assert match("The correspondence between the image and its prompt is fair.") == "fair"


def test_vqa_accuracy_is_mean_over_images_of_per_image_means():
    records = [
        VQARecord("a", "quality", "It is good.", "good"),
        VQARecord("a", "quality", "It is bad.", "good"),
        VQARecord("b", "quality", "No idea.", "poor"),
        VQARecord("b", "correspondence", "fair", "fair"),
    ]
    acc = vqa_accuracy(records)
    assert acc == {"quality": pytest.approx(0.25), "correspondence": 1.0}
    assert random_baseline() == 0.2
    assert majority_baseline(["good", "good", "bad"], ["good", "bad"]) == 0.5
