"""Equation-level checks of the method files and their shared blocks (heads, fusion, Q-Former, LoRA)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from _tiny import TinyDualEncoder, tiny_images
from agiqa.models.card import ScoreSpec
from agiqa.models.ip_iqa import IPIQA, subject_of
from agiqa.models.layers.fusion import BiCrossAttention, CrossAttentionPool
from agiqa.models.layers.heads import PerDimensionHeads, expected_level, masked_mean, pad_tokens
from agiqa.models.layers.lora import apply_lora
from agiqa.models.layers.qformer import QFormer
from agiqa.models.mint_iqa import MINTIQA
from agiqa.models.pref_iqa import PrefIQA
from agiqa.models.tsp_mgs import TSPMGS, patch_boxes, prompt_words

DIMS = (ScoreSpec("quality"), ScoreSpec("alignment", needs_prompt=True))
SMALL_QFORMER = {"hidden_size": 32, "num_layers": 1, "num_heads": 4, "num_queries": 4}


# --- shared heads -------------------------------------------------------------------------------------------


def test_expected_level_eq5() -> None:
    assert expected_level(torch.zeros(5)).item() == pytest.approx(5 / 4 * (3 - 1))  # uniform: L/2
    assert expected_level(torch.tensor([-50.0, -50, -50, -50, 50])).item() == pytest.approx(5.0)
    assert expected_level(torch.tensor([50.0, -50])).item() == pytest.approx(0.0)
    logits = torch.tensor([0.1, 0.4])
    p = torch.softmax(logits, 0)
    assert expected_level(logits).item() == pytest.approx(2 / 1 * (p[0] + 2 * p[1] - 1).item())
    with pytest.raises(ValueError, match="2 levels"):
        expected_level(torch.zeros(1))


def test_pad_tokens_and_masked_mean() -> None:
    tokens, mask = torch.arange(12.0).view(1, 3, 4), torch.tensor([[True, True, False]])
    padded, pmask = pad_tokens(tokens, mask, 5)
    assert padded.shape == (1, 5, 4) and pmask.tolist() == [[True, True, False, False, False]]
    assert padded[0, 2:].abs().sum() == 0  # masked positions are zeroed, whatever the tower put there
    cut, cmask = pad_tokens(tokens, None, 2)
    assert cut.shape == (1, 2, 4) and cmask.all()
    torch.testing.assert_close(masked_mean(tokens, mask), tokens[:, :2].mean(1))


def test_per_dimension_heads() -> None:
    heads = PerDimensionHeads(6, ["quality", "alignment"], hidden=4)
    out = heads(torch.randn(3, 6))
    assert {k: v.shape for k, v in out.items()} == {"quality": (3,), "alignment": (3,)}


# --- fusion ---------------------------------------------------------------------------------------------


def test_bi_cross_attention_eq6_to_8_by_hand() -> None:
    torch.manual_seed(0)
    block = BiCrossAttention(image_dim=5, text_dim=3, dim=4, num_heads=1)
    f_i, f_t = torch.randn(1, 6, 5), torch.randn(1, 2, 3)
    t2i, i2t = block(f_i, f_t)
    attn = block.image_q(f_i) @ block.text_q(f_t).transpose(1, 2) / math.sqrt(4)
    torch.testing.assert_close(t2i, attn.softmax(-1) @ block.text_v(f_t))
    torch.testing.assert_close(i2t, attn.transpose(1, 2).softmax(-1) @ block.image_v(f_i))


def test_bi_cross_attention_ignores_masked_tokens() -> None:
    torch.manual_seed(0)
    block = BiCrossAttention(5, 3, 4, num_heads=2)
    f_i, f_t = torch.randn(2, 6, 5), torch.randn(2, 3, 3)
    mask = torch.tensor([[True, True, False], [True, True, False]])
    t2i, i2t = block(f_i, f_t, text_mask=mask)
    changed = f_t.clone()
    changed[:, 2] = 100.0
    t2i_b, i2t_b = block(f_i, changed, text_mask=mask)
    torch.testing.assert_close(t2i, t2i_b)
    torch.testing.assert_close(i2t[:, :2], i2t_b[:, :2])


def test_cross_attention_pool_ignores_masked_tokens() -> None:
    torch.manual_seed(0)
    pool = CrossAttentionPool(query_dim=3, kv_dim=5, dim=8, num_heads=2, out_dim=6).eval()
    tokens, mask = torch.randn(2, 4, 5), torch.tensor([[True, True, True, False]] * 2)
    out = pool(torch.randn(2, 1, 3), tokens, mask)
    assert out.shape == (2, 1, 6)
    tokens[:, 3] = 50.0
    torch.testing.assert_close(pool(pool.query.weight.new_zeros(2, 1, 3), tokens, mask).shape, (2, 1, 6))


# --- Q-Former -------------------------------------------------------------------------------------------


def test_qformer_masks_and_sizes() -> None:
    torch.manual_seed(0)
    qf = QFormer(image_dim=6, text_dim=5, **SMALL_QFORMER).eval()
    image, text = torch.randn(2, 7, 6), torch.randn(2, 3, 5)
    out = qf(image, text)
    assert out.shape == (2, 4, 32)
    padded = torch.cat([text, torch.full((2, 2, 5), 9.0)], dim=1)
    mask = torch.tensor([[True] * 3 + [False] * 2] * 2)
    torch.testing.assert_close(qf(image, padded, text_mask=mask), out, atol=1e-5, rtol=1e-4)
    image_mask = torch.tensor([[True] * 7 + [False]] * 2)
    torch.testing.assert_close(
        qf(torch.cat([image, torch.full((2, 1, 6), 9.0)], 1), text, image_mask=image_mask), out, atol=1e-5, rtol=1e-4
    )
    assert not torch.allclose(qf(image, text + 1.0), out)  # text tokens share the self-attention
    tiny = QFormer.tiny(6, 5)
    assert (tiny.hidden_size, tiny.num_queries) == (256, 16)
    with pytest.raises(ValueError, match="text_dim=None"):
        QFormer(6, None, **SMALL_QFORMER)(image, text)


# --- TSP-MGS -------------------------------------------------------------------------------------------


def test_tsp_mgs_patches_are_native_resolution_crops() -> None:
    encoder = TinyDualEncoder()
    model = TSPMGS(encoder, DIMS)
    image = tiny_images(1, size=40)[0]  # 48 x 40
    views = model.preprocess(image)
    assert views.shape == (6, 3, 16, 16)
    torch.testing.assert_close(views[0], encoder.preprocess(image))
    torch.testing.assert_close(views[1], encoder.preprocess(image.crop((16, 12, 32, 28))))  # centre
    torch.testing.assert_close(views[5], encoder.preprocess(image.crop((32, 24, 48, 40))))  # bottom right
    small = model.preprocess(Image.new("RGB", (8, 12)))
    assert small.shape == (6, 3, 16, 16)
    assert patch_boxes(48, 40, 16, 1) == [(16, 12, 32, 28)]
    with pytest.raises(ValueError, match="n_patches=3"):
        patch_boxes(48, 40, 16, 3)


def test_tsp_mgs_projecting_in_the_head_changes_nothing_but_the_cache_boundary() -> None:
    encoder = TinyDualEncoder()
    plain = TSPMGS(encoder, DIMS, adapter=True)
    in_head = TSPMGS(encoder, DIMS, adapter=True, project_in_head=True)
    in_head.load_state_dict(plain.state_dict())
    pixels = torch.stack([plain.preprocess(im) for im in tiny_images(3)])
    prompts = ["a red cube", "two dogs on grass", "a castle at night, oil painting"]
    with torch.no_grad():
        feats = in_head.forward_features(pixels, prompts)
        want, got = plain(pixels, prompts), in_head.forward_head(feats)
    assert feats["image_pooled"].shape[-1] == encoder.image_token_dim  # the summary, before the projection
    for dim in want:
        torch.testing.assert_close(got[dim], want[dim])


def test_tsp_mgs_head_follows_eq3_to_7() -> None:
    torch.manual_seed(0)
    model = TSPMGS(TinyDualEncoder(), DIMS, alpha={"quality": 0.25, "alignment": 1.0}, logit_scale=2.0)
    image, patch = torch.randn(1, 16), torch.randn(1, 16)
    levels = torch.randn(1, 5, 16)
    words, mask = torch.randn(1, 4, 16), torch.tensor([[True, True, True, False]])
    feats = {
        "image_pooled": image,
        "patch_pooled": patch,
        "levels_perception": levels,
        "levels_alignment": levels,
        "words": words,
        "words_mask": mask,
    }
    out = model.forward_head(feats)
    cos = lambda a, b: F.cosine_similarity(a[:, None], b, dim=-1)  # noqa: E731
    q_img, q_patch = expected_level(2.0 * cos(image, levels)), expected_level(2.0 * cos(patch, levels))
    w_i, w_p = cos(image, words)[:, :3].mean(), cos(patch, words)[:, :3].mean()
    q_fg = (w_i + w_p) / 2 * 5
    torch.testing.assert_close(out["quality"], 0.25 * q_img + 0.75 * q_patch + q_fg)
    torch.testing.assert_close(out["alignment"], q_img + q_fg)


def test_tsp_mgs_prompt_kinds_alpha_and_words() -> None:
    encoder = TinyDualEncoder()
    model = TSPMGS(
        encoder,
        (ScoreSpec("quality"), ScoreSpec("correspondence")),
        alpha="learned",
        prompt_kind={"quality": "alignment"},
    )
    assert model.kinds == {"quality": "alignment", "correspondence": "alignment"}
    assert float(model.alpha("quality").detach()) == pytest.approx(0.5)
    feats = model.text_features(["a cat, 8k"])
    assert "levels_perception" not in feats and feats["levels_alignment"].shape == (1, 5, 16)
    assert prompt_words("a cat's hat, 8k!", 3) == ["a", "cat's", "hat"]
    assert TSPMGS(encoder, DIMS, perception_form="ant").text_features(["x"])["levels_perception"].shape[1] == 2
    with pytest.raises(ValueError, match="alpha"):
        TSPMGS(encoder, DIMS, alpha=1.5)
    with pytest.raises(ValueError, match="prompt_kind"):
        TSPMGS(encoder, DIMS, prompt_kind={"quality": "aesthetic"})
    plain = model.image_features(torch.randn(2, 3, 16, 16))  # no patches: the image stands in
    torch.testing.assert_close(plain["image_pooled"], plain["patch_pooled"])


# --- PrefIQA -------------------------------------------------------------------------------------------


def test_prefiqa_untrained_head_is_the_encoder_cosine() -> None:
    torch.manual_seed(0)
    encoder = TinyDualEncoder()
    model = PrefIQA(encoder, DIMS, n_phrases=4, logit_scale=10.0).eval()
    images = torch.stack([model.preprocess(im) for im in tiny_images(2)])
    prompts = ["a cat, oil painting, 8k", "sky"]
    feats = model.text_features(prompts)
    assert feats["phrases"].shape == (2, 4, 16)
    out = model(images, prompts)
    phrases = torch.stack(
        [
            encoder.encode_text(["a cat", "oil painting", "8k", prompts[0]]).pooled,
            encoder.encode_text(["sky"] * 4).pooled,
        ]
    )
    expected = 10.0 * F.cosine_similarity(phrases.mean(1), encoder.encode_image(images).pooled, dim=-1)
    torch.testing.assert_close(out["quality"], expected, atol=1e-5, rtol=1e-5)
    assert model.default_loss == "kl"


# --- MINT-IQA ------------------------------------------------------------------------------------------


def test_mint_iqa_refines_prompts_and_freezes() -> None:
    encoder = TinyDualEncoder()
    seen: list[str] = []
    original = encoder.encode_text
    encoder.encode_text = lambda texts: (seen.extend(texts), original(texts))[1]  # type: ignore[method-assign]
    model = MINTIQA(encoder, DIMS, qformer=SMALL_QFORMER, text_length=12, fix_rate=1.0)
    model.text_features(["a dark forest, watercolor"])
    assert seen == ["a dark forest, watercolor. Style: watercolor. Content: forest. Atmosphere: dark."]
    assert not any(p.requires_grad for p in encoder.patchify.parameters())
    assert all(p.requires_grad for p in encoder.words.parameters())
    assert MINTIQA(TinyDualEncoder(), DIMS, refiner="none", qformer=SMALL_QFORMER).refine("x, y") == "x, y"
    with pytest.raises(ValueError, match="refiner"):
        MINTIQA(TinyDualEncoder(), DIMS, refiner="llama", qformer=SMALL_QFORMER)


def test_apply_lora_trains_only_adapters() -> None:
    torch.manual_seed(0)
    model = MINTIQA(TinyDualEncoder(), DIMS, qformer=SMALL_QFORMER, text_length=8).eval()
    images = torch.stack([model.preprocess(im) for im in tiny_images(2)])
    before = model(images, ["a cat", "a dog"])
    apply_lora(model.encoder, r=2, alpha=4)
    trainable = [n for n, p in model.encoder.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any(n.startswith("regressors.") for n, p in model.named_parameters() if p.requires_grad)
    after = model(images, ["a cat", "a dog"])
    for name in before:  # LoRA's B starts at zero: the model is unchanged until trained
        torch.testing.assert_close(after[name], before[name])
    sum(after.values()).sum().backward()
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.encoder.named_parameters() if "lora_B" in n
    )
    with pytest.raises(ValueError, match="target_modules"):
        apply_lora(torch.nn.Conv2d(1, 1, 1))


# --- IP-IQA --------------------------------------------------------------------------------------------


def test_ip_iqa_integral_prompt_quality_token_and_image2prompt() -> None:
    torch.manual_seed(0)
    encoder = TinyDualEncoder()
    assert subject_of("cat, using laptop, anime style") == "cat"
    integral = IPIQA(encoder, DIMS, text_length=8).text_features(["cat, using laptop"])
    subject = IPIQA(encoder, DIMS, integral=False, text_length=8).text_features(["cat, using laptop"])
    torch.testing.assert_close(subject["text_pooled"], encoder.encode_text(["cat"]).pooled)
    assert not torch.allclose(integral["text_pooled"], subject["text_pooled"])
    no_token = IPIQA(encoder, DIMS, qa_token=False, text_length=8)
    assert no_token.qa_embedding is None
    feats = no_token.text_features(["a b c"])
    torch.testing.assert_close(
        no_token.query(feats["text_tokens"], feats["text_mask"])[:, 0],
        masked_mean(feats["text_tokens"], feats["text_mask"]),
    )
    model = IPIQA(encoder, DIMS, text_length=8)
    images = torch.stack([model.preprocess(im) for im in tiny_images(2)])
    feats = model.forward_features(images, ["a cat", "a dog"])
    expected = (1 - F.cosine_similarity(feats["image_pooled"], feats["text_pooled"], dim=-1)).mean()
    torch.testing.assert_close(model.image2prompt_loss(feats), expected)
    with pytest.raises(ValueError, match="num_heads"):
        IPIQA(encoder, DIMS, num_heads=3)
