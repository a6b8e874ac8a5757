"""Scores depend on the image and the prompt only: not on batch size, order, or which process computes them.

Over every registered card (``_registry_scorers``: the real lite encoder for lite cards, a tiny one for the others):
batch 1 against batch 16 in reversed order, and two fresh processes; both within 1e-5 (plus 1e-6 relative, for
logit-scale scores such as PrefIQA's, where float32 resolution is ~4e-6).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _registry_scorers import PROMPTS, images, is_lite, scorer_for
from agiqa.models.card import ModelCard
from agiqa.models.registry import list_models

TESTS = Path(__file__).resolve().parent
CARDS = list_models()
ATOL, RTOL = 1e-5, 1e-6  # 1e-5 on a 0-5 scale; one part in a million of logit-scale scores (PrefIQA: ~50)


@pytest.mark.parametrize("card", CARDS, ids=lambda c: c.name)
def test_batch_one_equals_batch_sixteen_reversed(card: ModelCard) -> None:
    scorer = scorer_for(card)
    pics = images(16)
    prompts = [PROMPTS[k % len(PROMPTS)] for k in range(16)]
    one = scorer.score(pics, prompts, batch_size=1)
    many = scorer.score(pics[::-1], prompts[::-1], batch_size=16)
    assert all(one.ok) and all(many.ok), (one.errors, many.errors)
    for name, values in one.scores.items():
        np.testing.assert_allclose(many.scores[name][::-1], values, rtol=RTOL, atol=ATOL, err_msg=name)
    if is_lite(card):
        assert scorer.runtime == "onnx"  # the runtime users get is the one tested


@pytest.mark.slow
def test_two_fresh_processes_give_the_same_scores() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    runs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, str(TESTS / "_registry_scorers.py")], capture_output=True, text=True, env=env, timeout=900
        )
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout))
    assert set(runs[0]) == {c.name for c in CARDS}
    for card, dims in runs[0].items():
        for dim, values in dims.items():
            np.testing.assert_allclose(runs[1][card][dim], values, rtol=RTOL, atol=ATOL, err_msg=f"{card} {dim}")
