"""``blip2:SOURCE``: a BLIP-2 image-text-matching checkpoint (``Blip2ForImageTextRetrieval``), for MINT-IQA.

MINT-IQA (``001_*``, Sec. IV-A) takes BLIP-2's frozen EVA ViT-G image encoder, a BERT-style text encoder
and a Q-Former whose learnable queries self-attend with the text tokens and cross-attend to the image
embeddings. This backend gives those pieces from one checkpoint, e.g. ``Salesforce/blip2-itm-vit-g``:

* Image tokens: the ViT's last hidden states after its final norm, **class token included** at position 0,
  exactly what BLIP-2's Q-Former cross-attends to (so ``image_grid`` is None).
* Image pooled: BLIP-2's image-text-contrastive feature, ``vision_projection`` of the Q-Former's query
  outputs; BLIP-2 keeps one per query (32) and takes the best match, a ``DualEncoder`` needs one vector, so
  pooled = the mean of the L2-normalised query features (``encode_queries`` returns all of them).
* Text tokens / pooled: the Q-Former's text-only path (BERT embeddings + Q-Former self-attention layers,
  BLIP-2's unimodal text encoder); pooled = ``text_projection`` of [CLS]. Text longer than the Q-Former's
  position table (512 wordpieces) is truncated with a warning.
* ``qformer_config``, ``query_tokens`` and ``model.qformer`` are exposed for methods that build or initialise
  their own Q-Former.
* Freezing: the image tower's groups are the ViT layers; the text tower's groups are the Q-Former layers
  (shared with the query path, so freezing text also freezes how queries read the image). Query tokens and
  projections stay trainable.

InstructBLIP checkpoints bundle a 7B+ language model and are not loaded here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from transformers import AutoConfig, AutoTokenizer, Blip2ForImageTextRetrieval, Blip2QFormerConfig

from agiqa.encoders.base import EncoderOutput
from agiqa.encoders.factory import register_encoder
from agiqa.encoders.preprocess import ImageTransform
from agiqa.encoders.pretrained import PretrainedEncoder, load_pretrained, read_preprocessor_config
from agiqa.encoders.tokenize import tokenize


class Blip2Encoder(PretrainedEncoder):
    """A transformers ``Blip2ForImageTextRetrieval`` behind the ``DualEncoder`` interface (module docstring).

    Args:
        model: The loaded BLIP-2 ITM model.
        tokenizer: Its BERT tokenizer.
        transform: Its image preprocessing.
        name: The spec it was built from.
    """

    def __init__(self, model: Blip2ForImageTextRetrieval, tokenizer, transform: ImageTransform, name: str) -> None:
        config = model.config
        super().__init__(model, tokenizer, transform, name, image_size=config.vision_config.image_size)
        self.image_grid = None
        self.embed_dim = config.image_text_hidden_size
        self.image_token_dim = config.vision_config.hidden_size
        self.text_token_dim = config.qformer_config.hidden_size
        self.max_text_tokens = config.qformer_config.max_position_embeddings
        self.eval()

    @property
    def qformer_config(self) -> Blip2QFormerConfig:
        """Configuration of the checkpoint's Q-Former (hidden size, layers, cross-attention frequency ...)."""
        return self.model.config.qformer_config

    @property
    def query_tokens(self) -> nn.Parameter:
        """The learned ``(1, n_queries, hidden)`` query embeddings."""
        return self.model.query_tokens

    def encode_queries(self, image_tokens: torch.Tensor) -> torch.Tensor:
        """Q-Former query outputs projected into the joint space, ``(B, n_queries, embed_dim)``."""
        queries = self.model.query_tokens.expand(image_tokens.shape[0], -1, -1)
        mask = torch.ones(image_tokens.shape[:-1], dtype=torch.long, device=image_tokens.device)
        out = self.model.qformer(query_embeds=queries, encoder_hidden_states=image_tokens, encoder_attention_mask=mask)
        return self.model.vision_projection(out.last_hidden_state)

    def encode_image(self, pixel_values: torch.Tensor) -> EncoderOutput:
        """ViT tokens (class token first) and the mean of the normalised query features."""
        tokens = self.model.vision_model(pixel_values=pixel_values).last_hidden_state
        queries = nn.functional.normalize(self.encode_queries(tokens), dim=-1)
        return EncoderOutput(tokens=tokens, pooled=queries.mean(dim=1))

    def encode_text(self, texts: Sequence[str]) -> EncoderOutput:
        """Q-Former text-path tokens and the projected [CLS]."""
        batch = tokenize(self.tokenizer, texts, self.max_text_tokens, self.model.query_tokens.device)
        embeds = self.model.embeddings(input_ids=batch["input_ids"])
        out = self.model.qformer(query_embeds=embeds, query_length=0, attention_mask=batch["attention_mask"])
        tokens = out.last_hidden_state
        pooled = self.model.text_projection(tokens[:, 0])
        return EncoderOutput(tokens=tokens, pooled=pooled, mask=batch["attention_mask"].bool())

    def project_tokens(self, tokens: torch.Tensor, tower: str) -> torch.Tensor:
        """Text tokens through the text projection; image tokens have no projection in BLIP-2."""
        if tower == "image":
            raise NotImplementedError("BLIP-2 maps image tokens to the joint space only through the Q-Former")
        return self.model.text_projection(tokens)

    def layer_groups(self, tower: str) -> list[list[nn.Module]]:
        """ViT layers (embeddings first, final norm last) or Q-Former layers (text embeddings first)."""
        if tower == "image":
            vit = self.model.vision_model
            groups: list[list[nn.Module]] = [[layer] for layer in vit.encoder.layers]
            groups[0] = [vit.embeddings, *groups[0]]
            groups[-1] = [*groups[-1], vit.post_layernorm]
            return groups
        qformer = self.model.qformer
        groups = [[layer] for layer in qformer.encoder.layer]
        groups[0] = [self.model.embeddings, qformer.layernorm, *groups[0]]
        return groups


@register_encoder("blip2")
def build_blip2(source: str | None = None, allow_download: bool | None = None) -> Blip2Encoder:
    """Builder for ``blip2:SOURCE`` (folder or hub id of a ``Blip2ForImageTextRetrieval`` checkpoint).

    Args:
        source: Local folder or hub id, e.g. ``Salesforce/blip2-itm-vit-g``.
        allow_download: Let transformers download missing files (default: env ``AGIQA_ALLOW_DOWNLOAD``).
    """
    if not source:
        raise ValueError("encoder 'blip2' needs a source: 'blip2:Salesforce/blip2-itm-vit-g' or 'blip2:/path/to/dir'")
    config = load_pretrained("blip2", source, AutoConfig.from_pretrained, allow_download)
    if "Blip2ForImageTextRetrieval" not in (config.architectures or []):
        raise ValueError(
            f"blip2:{source} is a {config.architectures} checkpoint; the blip2 encoder needs an image-text "
            "matching checkpoint (Blip2ForImageTextRetrieval), e.g. Salesforce/blip2-itm-vit-g"
        )
    model = load_pretrained(
        "blip2", source, Blip2ForImageTextRetrieval.from_pretrained, allow_download, use_safetensors=True
    )
    tokenizer = load_pretrained("blip2", source, AutoTokenizer.from_pretrained, allow_download)
    transform = ImageTransform.from_hf_config(read_preprocessor_config("blip2", source, allow_download))
    return Blip2Encoder(model, tokenizer, transform, name=f"blip2:{source}")
