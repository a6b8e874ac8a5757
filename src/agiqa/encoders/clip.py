"""``clip:SOURCE``: any CLIP checkpoint in Hugging Face format, from a local folder or a hub id.

OpenAI CLIP, LAION CLIP (``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``), PickScore and HPSv2 exports load the
same way. Nothing is downloaded unless ``allow_download=True`` or ``AGIQA_ALLOW_DOWNLOAD=1``; a checkpoint
that is not on disk fails with the ``hf download`` command that fetches it.

* Image tokens: the last hidden states of the patch positions, ``(B, (S/P)^2, D_vision)``, **without** the
  class token (so ``image_grid`` reshapes them) and before the final layer norm; ``project_tokens`` applies
  that norm and the visual projection, putting patches in the joint space.
* Image pooled: ``visual_projection(post_layernorm(CLS))``, i.e. ``CLIPModel.get_image_features``.
* Text tokens: last hidden states (final layer norm applied) of all positions, padding masked out.
* Text pooled: ``text_projection`` of the end-of-text token, i.e. ``get_text_features``. Text longer than the
  checkpoint's position table (77 tokens for every released CLIP) is truncated with a warning.
* Preprocessing: the checkpoint's ``preprocessor_config.json`` (resize + centre crop, its mean/std).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from transformers import AutoTokenizer, CLIPModel

from agiqa.encoders.base import EncoderOutput
from agiqa.encoders.factory import register_encoder
from agiqa.encoders.preprocess import ImageTransform
from agiqa.encoders.pretrained import PretrainedEncoder, load_pretrained, read_preprocessor_config
from agiqa.encoders.tokenize import tokenize


class CLIPEncoder(PretrainedEncoder):
    """A transformers ``CLIPModel`` behind the ``DualEncoder`` interface (see module docstring).

    Args:
        model: The loaded CLIP model.
        tokenizer: Its tokenizer.
        transform: Its image preprocessing.
        name: The spec it was built from.
    """

    def __init__(self, model: CLIPModel, tokenizer, transform: ImageTransform, name: str) -> None:
        vision, text = model.config.vision_config, model.config.text_config
        super().__init__(model, tokenizer, transform, name, image_size=vision.image_size)
        side = vision.image_size // vision.patch_size
        self.image_grid = (side, side)
        self.embed_dim = model.config.projection_dim
        self.image_token_dim = vision.hidden_size
        self.text_token_dim = text.hidden_size
        self.max_text_tokens = text.max_position_embeddings
        self.eval()

    def encode_image(self, pixel_values: torch.Tensor) -> EncoderOutput:
        """Patch tokens (no class token) and the projected class embedding."""
        out = self.model.vision_model(pixel_values=pixel_values)
        pooled = self.model.visual_projection(out.pooler_output)
        return EncoderOutput(tokens=out.last_hidden_state[:, 1:], pooled=pooled)

    def encode_text(self, texts: Sequence[str]) -> EncoderOutput:
        """Token states and the projected end-of-text embedding; text past 77 tokens is truncated."""
        device = self.model.logit_scale.device
        batch = tokenize(self.tokenizer, texts, self.max_text_tokens, device)
        out = self.model.text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        pooled = self.model.text_projection(out.pooler_output)
        return EncoderOutput(tokens=out.last_hidden_state, pooled=pooled, mask=batch["attention_mask"].bool())

    def project_tokens(self, tokens: torch.Tensor, tower: str) -> torch.Tensor:
        """Patch tokens through post-layernorm + visual projection; text tokens through the text projection."""
        if tower == "image":
            return self.model.visual_projection(self.model.vision_model.post_layernorm(tokens))
        return self.model.text_projection(tokens)

    def layer_groups(self, tower: str) -> list[list[nn.Module]]:
        """Transformer layers; embeddings (+ pre-norm) join the first, the final norm the last."""
        if tower == "image":
            tower_model = self.model.vision_model
            first, last = [tower_model.embeddings, tower_model.pre_layrnorm], [tower_model.post_layernorm]
        else:
            tower_model = self.model.text_model
            first, last = [tower_model.embeddings], [tower_model.final_layer_norm]
        groups: list[list[nn.Module]] = [[layer] for layer in tower_model.encoder.layers]
        groups[0] = first + groups[0]
        groups[-1] = groups[-1] + last
        return groups


@register_encoder("clip")
def build_clip(source: str | None = None, allow_download: bool | None = None) -> CLIPEncoder:
    """Builder for ``clip:SOURCE`` (a folder written by ``save_pretrained``/``hf download`` or a hub id).

    Args:
        source: Local folder or hub id.
        allow_download: Let transformers download missing files (default: env ``AGIQA_ALLOW_DOWNLOAD``).
    """
    if not source:
        raise ValueError("encoder 'clip' needs a source: 'clip:openai/clip-vit-base-patch32' or 'clip:/path/to/dir'")
    model = load_pretrained("clip", source, CLIPModel.from_pretrained, allow_download, use_safetensors=True)
    tokenizer = load_pretrained("clip", source, AutoTokenizer.from_pretrained, allow_download)
    transform = ImageTransform.from_hf_config(read_preprocessor_config("clip", source, allow_download))
    return CLIPEncoder(model, tokenizer, transform, name=f"clip:{source}")
