"""The boundary where PrefIQA's scale bug lived: what a real trainer step hands to the pair loss.

PrefIQA returns ``logit_scale * cos`` (eq. 10 with CLIP's temperature) and eq. 11 is a softmax over a pair's scores.
The trainer once multiplied those scores by ``logit_scale`` again, so the loss saw ``logit_scale**2 * cos``; each
side's own tests passed. Here a spy on the loss records what arrives during one step of a tiny PrefIQA and compares
it with ``logit_scale * cos`` computed from the encoder alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import _train_tiny as tiny
from agiqa import losses
from agiqa.data.images import load_image
from agiqa.encoders.factory import create_encoder
from agiqa.models.prompts import segment_prompt
from agiqa.train import train
from agiqa.train.table import image_table

LOGIT_SCALE = 10.0
N_PHRASES = 3


def test_pair_loss_receives_logit_scale_times_cosine_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny.register()
    data = tiny.make_dataset(tmp_path / "images", n_prompts=3, per_prompt=3)
    model_section = {
        **tiny.tiny_model_section(),
        "method": "prefiqa",
        "method_args": {"n_phrases": N_PHRASES, "logit_scale": LOGIT_SCALE},
    }
    config = tiny.train_config(tmp_path, "prefiqa-scale", 0.0, loss="kl", steps=1, batch_size=1000, cache="off")
    config = config.replace(model=model_section)
    arrived: list[torch.Tensor] = []
    real_kl = losses.preference_kl

    def spy(s_a: torch.Tensor, s_b: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        arrived.append(torch.cat([s_a, s_b]).detach().clone())
        return real_kl(s_a, s_b, *args, **kwargs)

    monkeypatch.setattr(losses, "preference_kl", spy)
    train(config, dataset=data)
    assert len(arrived) == 1, "one step, one call of the pair loss"

    # Independently: the untrained PrefIQA head (zero-initialised W^out) scores logit_scale * cos(mean phrase
    # embedding, image embedding), straight from a fresh copy of the encoder (the step above moved the trainable
    # projections of the model's own).
    encoder = create_encoder("tiny")
    table = image_table(data)
    with torch.no_grad():
        expected = []
        for image, prompt in zip(table.images, table.prompts, strict=True):
            image_embedding = encoder.encode_image(encoder.preprocess(load_image(image)).unsqueeze(0)).pooled[0]
            phrases = encoder.encode_text(segment_prompt(prompt, N_PHRASES)).pooled.mean(dim=0)
            expected.append(LOGIT_SCALE * F.cosine_similarity(phrases, image_embedding, dim=0))
    expected_scores = torch.stack(expected)
    assert expected_scores.abs().max() > 1.0, "cosines too small for the check to tell the scales apart"
    for score in arrived[0]:
        nearest = (expected_scores - score).abs().min()
        assert nearest < 1e-4, f"the loss got {score:.4f}; logit_scale * cos gives {expected_scores.tolist()}"
