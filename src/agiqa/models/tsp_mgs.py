"""TSP-MGS (002): task-specific prompts and multi-granularity similarity.

Inputs (sec. 3.1): the resized image ``I_r`` and ``N`` patches ``P_i`` cut from the full-resolution image
(``preprocess`` returns them stacked, ``(1 + N, 3, S, S)``); level prompts and the initial prompt's words.

Task-specific prompts (sec. 3.2, built in ``agiqa.models.prompts``), ``L`` levels, worst first:
    perception ``adj``  "A photo of {bad, poor, fair, good, perfect} quality."
    perception ``ant``  "{Bad, Good} photo."
    alignment           "A photo that {badly, poorly, fairly, well, perfectly} matches {prompt}."
    generic (ours)      "A photo that {badly, ...} matches the prompt." (the same for every prompt)
Each output dimension uses one kind (``prompt_kind``); by default ``alignment`` / ``correspondence`` /
``preference`` use the alignment prompts and every other dimension the perception prompts. ``generic`` gives an
alignment dimension level prompts of its own that do not read the prompt (it then reads it only through the
terms below).

    eq. 2   ``S(F_I, F_T)`` cosine similarity (``heads.cosine``);
    eq. 3   ``p_j^I = softmax_j(S(F_Ir, F_Tts_j))``, and ``p_j^P`` with the mean patch feature;
    eq. 5   ``Q_cg = L / (L - 1) * (sum_j j p_j - 1)`` (``heads.expected_level``);
    eq. 4   ``w_I = mean_k S(F_Ir, F_Wk)`` over the K words of the initial prompt, ``w_P`` likewise;
    eq. 6   ``Q_fg = (w_I + w_P) / 2 * L``;
    eq. 7   ``Q = alpha Q_cg^I + (1 - alpha) Q_cg^P + Q_fg``;
    eq. 8   MAE loss (``agiqa.losses.mae_loss``).

Choices where the paper is vague (see docs/methods.md):
* Patches: ``n_patches`` = 5 crops of side ``S`` (the encoder input) at native resolution: the centre and the
  four corners (1 = centre only). Images whose shorter side is below ``S`` are first upscaled to ``S``
  (``upscale_short_side``: aspect ratios beyond 4:1 are cut to 4:1 first, so the upscale stays bounded).
* Word features ``F_Wk``: each word of the prompt (``\\w`` runs, at most ``max_words``) encoded on its own by
  the text tower, so words live in the joint space whatever the encoder; all words count, as in eq. 4.
* ``alpha`` per dimension: a number or ``"learned"`` (a sigmoid-squashed parameter starting at 0.5); by
  default the paper's best (Fig. 7): 0 for perception, 1 for alignment.
* ``logit_scale`` multiplies the similarities before the softmax of eq. 3 (1 = the paper's literal form);
  ``learn_logit_scale`` makes it trainable.
* ``adapter``: optional zero-initialised residual linear maps on the image and text embeddings, so that a
  head over a frozen encoder (the lite cards) has something to train; off in the paper's (clip) cards, where
  the whole CLIP is fine-tuned instead.
* ``project_in_head``: the features stop at the encoder's summaries (``EncoderOutput.summary``) and the head
  applies the encoder's joint-space projections, so the projections train even over cached features (the
  default ``agiqa-lite``; see ``agiqa.encoders.lite``). The projection is linear, so projecting the mean
  patch summary equals averaging the projected patches.
* ``fine_grained``: eq. 6 per dimension (default on, as in the paper). Off for a perception dimension makes
  it prompt-free: its score no longer depends on the prompt's words, so it can be scored without a prompt.

Our extension, ``concept_match`` (off in the paper's cards, on in ``agiqa-lite``): eq. 4 compares each word
with the whole image in a joint space that a frozen encoder trained on ImageNet never aligned, so it hardly
reads the prompt (an image's score fell under another image's prompt for 58% of images). Encoders with a
concept vocabulary (``EncoderOutput.concepts``: the lite encoder's ImageNet class probabilities ``p(c)``,
averaged over the image and its patches) give a second, readable signal: each word ``w`` is mapped into that
vocabulary by the text tower, ``q_w(c) = softmax_c(S(w, name_c) / T)`` with the encoder's ``concept_text``
(``T = concept_temperature``), and

    ``M = mean_k log sum_c p(c) q_wk(c)``  (how probable the image makes the prompt's words),
    ``Q += gamma M + beta`` for the alignment-kind dimensions,

with ``gamma`` and ``beta`` learned per dimension and zero-initialised (an untrained term leaves eq. 7 as is).
``concept_pmi`` divides each word's probability by its probability under the average training image's concepts,
``log sum_c p(c) q_w(c) - log sum_c pbar(c) q_w(c)``: a word that every image makes probable ("photo", "art")
then no longer favours the prompts that hold it (the prior ``pbar`` is fitted with the model, see ``prefit``).

Our extension, ``caption_match`` (``agiqa-lite``): a map from the image's features (its summary and log concept
probabilities) to the text tower's space, fitted in closed form on the training rows to predict the embedding of
each image's level-3 alignment prompt ("A photo that fairly matches {prompt}"; ``layers.caption.RidgeCaption``),
and ``Q += delta C`` with ``C = S(caption, F_Tts_3)`` for the alignment-kind dimensions (``delta`` learned,
zero-initialised). The text side is not trained, so new prompts are read in the same space as the training ones.
The map is fitted before the gradient steps (``prefit``); while they run, the training rows see out-of-fold
captions, as good as a new prompt's, so ``delta`` is not learnt from captions fitted to those very rows.
With ``caption_basis: k`` the map predicts coordinates in a ``k``-dimensional basis of the text space, the text
directions of a regularised CCA between image features and prompts (``RidgeCaption(text_basis=k)``), and ``C``
is the cosine of the caption with the prompt's coordinates: only what the image features can tell about a prompt
counts. The out-of-fold captions are compared in bases fitted without their fold (``layers.caption``).

``match_mix: fitted`` ties the two: ``Q += gamma (M + r C) + beta`` with one learned ``gamma`` and the mix ``r``
chosen in ``prefit`` among ``MATCH_MIXES`` as the one under which the most training rows score higher with their
own prompt than with a random other training prompt, ``C`` from the out-of-fold captions (what a new prompt
gets). How far alignment falls under another prompt then depends on ``r`` alone, chosen for exactly that; with
two free ``gamma`` it is whatever the MOS loss leaves.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from agiqa.encoders.base import DualEncoder, EncoderOutput
from agiqa.encoders.preprocess import upscale_short_side
from agiqa.models._builder import build_from_card
from agiqa.models.base import QualityModel
from agiqa.models.card import ModelCard, ScoreSpec
from agiqa.models.layers.caption import RidgeCaption
from agiqa.models.layers.heads import cosine, expected_level, masked_mean, zero_linear
from agiqa.models.prompts import ALIGNMENT_DIMENSIONS, ALIGNMENT_LEVELS, PERCEPTION_PROMPTS, alignment_level_prompts
from agiqa.models.registry import register_method

DEFAULT_ALPHA = {"perception": 0.0, "alignment": 1.0, "generic": 1.0}
GENERIC_PROMPT = "the prompt"
_WORD = re.compile(r"\w[\w'-]*")


MATCH_MIXES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)  # r of match_mix: fitted


def prompt_words(prompt: str, max_words: int) -> list[str]:
    """The words of a prompt (runs of word characters), at most ``max_words``; the prompt itself if none."""
    words = _WORD.findall(prompt)[:max_words]
    return words or [prompt.strip()]


def patch_boxes(width: int, height: int, side: int, n_patches: int) -> list[tuple[int, int, int, int]]:
    """Crop boxes ``(left, top, right, bottom)``: the centre, then the four corners (``n_patches`` 1 or 5)."""
    if n_patches not in (1, 5):
        raise ValueError(f"tsp-mgs: n_patches={n_patches}; use 1 (centre) or 5 (centre + 4 corners)")
    left, top = (width - side) // 2, (height - side) // 2
    boxes = [(left, top, left + side, top + side)]
    if n_patches == 5:
        right, bottom = width - side, height - side
        boxes += [
            (0, 0, side, side),
            (right, 0, width, side),
            (0, bottom, side, height),
            (right, bottom, width, height),
        ]
    return boxes


class TSPMGS(QualityModel):
    """TSP-MGS over any ``DualEncoder`` (see module docstring).

    Args:
        encoder: The backbone (CLIP ViT-B/32 in the paper).
        dimensions: Output scores.
        prompt_kind: ``{dimension: "perception" | "alignment" | "generic"}`` overriding the default by name.
        perception_form: ``adj`` (5 levels) or ``ant`` (2 levels).
        alpha: Eq. 7 balance: a number, ``"learned"``, or ``{dimension: number | "learned"}``.
        n_patches: Patches cut from the full-resolution image (1 or 5).
        max_words: Words of the initial prompt used in eq. 4.
        logit_scale: Multiplier of the similarities before the softmax of eq. 3.
        learn_logit_scale: Whether ``logit_scale`` is trained.
        adapter: Zero-initialised residual linear maps on the image and text embeddings.
        project_in_head: Cache encoder summaries and apply the (trainable) projections in the head.
        fine_grained: Eq. 6 on or off: a bool, or ``{dimension: bool}`` (default True).
        concept_match: Add the concept-level match term to the alignment-kind dimensions (module docstring).
        concept_temperature: ``T`` of the word-to-concept softmax.
        concept_pmi: Divide the concept match by the average training image's (module docstring).
        caption_match: Add the caption match term to the alignment-kind dimensions (module docstring).
        caption_basis: ``k > 0``: the caption map predicts, and ``C`` compares, coordinates in a ``k``-dimensional
            CCA basis of the text space fitted with it (``RidgeCaption(text_basis=k)``); 0: the text space itself.
            A list: candidate sizes, chosen by the map's grouped cross-validation on the training rows.
        caption_basis_penalty: The CCA's ridge (``RidgeCaption(basis_penalty=...)``), or a list of candidates.
        match_init: Initial ``gamma`` of the concept and caption terms (0: an untrained term adds nothing). A
            dimension whose learned terms do not see the prompt reads it only through these terms, so it needs a
            positive start to read the prompt before training.
        match_mix: ``learned`` (a ``gamma`` per term) or ``fitted`` (one ``gamma`` on ``M + r C``, ``r`` chosen in
            ``prefit``; module docstring). ``fitted`` needs ``concept_match``, ``concept_pmi`` and ``caption_match``.
        own_projections: Dimensions that get joint-space projections of their own (copies of the encoder's, then
            trained on that dimension's loss alone); needs ``project_in_head``. The others share the encoder's.
    """

    default_loss = "mae"

    def __init__(
        self,
        encoder: DualEncoder,
        dimensions: Sequence[ScoreSpec],
        prompt_kind: Mapping[str, str] | None = None,
        perception_form: str = "adj",
        alpha: float | str | Mapping[str, float | str] | None = None,
        n_patches: int = 5,
        max_words: int = 16,
        logit_scale: float = 1.0,
        learn_logit_scale: bool = False,
        adapter: bool = False,
        project_in_head: bool = False,
        fine_grained: bool | Mapping[str, bool] = True,
        concept_match: bool = False,
        concept_temperature: float = 0.1,
        concept_pmi: bool = False,
        caption_match: bool = False,
        caption_basis: int | Sequence[int] = 0,
        caption_basis_penalty: float | Sequence[float] = 3.0,
        match_init: float = 0.0,
        match_mix: str = "learned",
        own_projections: Sequence[str] = (),
    ) -> None:
        super().__init__(encoder, dimensions)
        if perception_form not in PERCEPTION_PROMPTS:
            raise ValueError(f"tsp-mgs: perception_form={perception_form!r}; use one of {list(PERCEPTION_PROMPTS)}")
        patch_boxes(2 * encoder.image_size, 2 * encoder.image_size, encoder.image_size, n_patches)
        names = [d.name for d in self.dimensions]
        kinds = {n: "alignment" if n in ALIGNMENT_DIMENSIONS else "perception" for n in names}
        for name, kind in (prompt_kind or {}).items():
            if name not in kinds or kind not in DEFAULT_ALPHA:
                raise ValueError(
                    f"tsp-mgs: prompt_kind {name!r}: {kind!r}; keys must be among {names}, values "
                    "'perception', 'alignment' or 'generic'"
                )
            kinds[name] = kind
        self.kinds = kinds
        self.perception_prompts = PERCEPTION_PROMPTS[perception_form]
        self.n_patches, self.max_words = n_patches, max_words
        self.projects_in_head = project_in_head
        self.alpha_fixed: dict[str, float] = {}
        self.alpha_logit = nn.ParameterDict()
        for name in names:
            value = alpha.get(name) if isinstance(alpha, Mapping) else alpha
            value = DEFAULT_ALPHA[kinds[name]] if value is None else value
            if value == "learned":
                self.alpha_logit[name] = nn.Parameter(torch.zeros(()))
            elif isinstance(value, int | float) and 0.0 <= value <= 1.0:
                self.alpha_fixed[name] = float(value)
            else:
                raise ValueError(f"tsp-mgs: alpha for {name!r} is {value!r}; give a number in [0, 1] or 'learned'")
        fine = fine_grained if isinstance(fine_grained, Mapping) else dict.fromkeys(names, fine_grained)
        unknown = sorted(set(fine) - set(names))
        if unknown:
            raise ValueError(f"tsp-mgs: fine_grained names {unknown}; keys must be among {names}")
        self.fine_grained = {n: bool(fine.get(n, True)) for n in names}
        self.concept_match, self.concept_temperature = concept_match, concept_temperature
        readers = [n for n in names if kinds[n] == "alignment" or n in ALIGNMENT_DIMENSIONS]
        matched = readers if concept_match else []
        n_concepts = 0
        if matched or concept_pmi:
            try:
                n_concepts = len(encoder.concept_text())
            except NotImplementedError as err:
                raise ValueError(f"tsp-mgs: concept_match needs an encoder with a concept vocabulary: {err}") from err
        if concept_pmi and not matched:
            raise ValueError("tsp-mgs: concept_pmi corrects the concept match; set concept_match: true with it")
        self.concept_gamma = nn.ParameterDict({n: nn.Parameter(torch.tensor(float(match_init))) for n in matched})
        self.concept_beta = nn.ParameterDict({n: nn.Parameter(torch.zeros(())) for n in matched})
        self.concept_pmi = concept_pmi
        if concept_pmi:
            self.register_buffer("concept_prior", torch.zeros(n_concepts))
        if match_mix not in ("learned", "fitted"):
            raise ValueError(f"tsp-mgs: match_mix={match_mix!r}; use 'learned' or 'fitted'")
        self.mix_fitted = match_mix == "fitted"
        if self.mix_fitted and not (concept_match and concept_pmi and caption_match and readers):
            raise ValueError(
                "tsp-mgs: match_mix: fitted mixes both terms; set concept_match, concept_pmi and caption_match"
            )
        if caption_basis and not caption_match:
            raise ValueError("tsp-mgs: caption_basis shapes the caption match; set caption_match: true with it")
        self.caption = (
            RidgeCaption(text_basis=caption_basis, basis_penalty=caption_basis_penalty)
            if caption_match and readers
            else None
        )
        self.caption_gamma = nn.ParameterDict(
            {n: nn.Parameter(torch.tensor(float(match_init))) for n in readers if caption_match and not self.mix_fitted}
        )
        if self.mix_fitted:
            self.register_buffer("match_ratio", torch.tensor(1.0))  # r of M + r C, chosen in prefit
        if concept_pmi or self.caption is not None:  # (centre, spread) of the concept and caption terms
            self.register_buffer("match_stats", torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
        unknown = sorted(set(own_projections) - set(names))
        if unknown or (own_projections and not project_in_head):
            raise ValueError(
                f"tsp-mgs: own_projections {list(own_projections)}: names must be among {names} "
                "and project_in_head must be true (the copies project cached encoder summaries)"
            )
        shared = encoder.projection_modules() if own_projections else [None, None]
        if len(shared) != 2:
            raise ValueError(
                f"tsp-mgs: own_projections needs an encoder with an image and a text projection; "
                f"{encoder.name} names {len(shared)}"
            )
        self.own_projections = nn.ModuleDict(
            {n: nn.ModuleDict(zip(("image", "text"), copy.deepcopy(shared), strict=True)) for n in own_projections}
        )
        self.log_scale = nn.Parameter(torch.tensor(math.log(logit_scale)), requires_grad=learn_logit_scale)
        dim = encoder.embed_dim
        self.image_adapter = zero_linear(dim, dim) if adapter else None
        self.text_adapter = zero_linear(dim, dim) if adapter else None

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """``(1 + n_patches, 3, S, S)``: the resized image, then the patches at native resolution."""
        side = self.encoder.image_size
        image = upscale_short_side(image.convert("RGB"), side)
        views = [self.encoder.preprocess(image)]
        views += [self.encoder.preprocess(image.crop(box)) for box in patch_boxes(*image.size, side, self.n_patches)]
        return torch.stack(views)

    def image_features(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        """``F_Ir`` and the mean patch feature ``mean_i F_Pi``, both ``(B, D)``.

        A plain ``(B, 3, S, S)`` batch (no patches) is accepted; the image then stands in for its patches.
        """
        if pixel_values.dim() == 4:
            pixel_values = pixel_values.unsqueeze(1)
        batch, views = pixel_values.shape[:2]
        out = self.encoder.encode_image(pixel_values.flatten(0, 1))
        pooled = self._pooled(out).view(batch, views, -1)
        patches = pooled[:, 1:] if views > 1 else pooled
        feats = {"image_pooled": pooled[:, 0], "patch_pooled": patches.mean(dim=1)}
        if self.concept_gamma or self.caption is not None:
            if out.concepts is None:
                raise ValueError(f"tsp-mgs: concept_match needs concept probabilities; {self.encoder.name} gives none")
            feats["concepts"] = out.concepts.view(batch, views, -1).mean(dim=1)
        return feats

    def text_features(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Level-prompt embeddings ``(B, L, D)`` per prompt kind in use and word embeddings ``(B, K, D)``."""
        batch, feats = len(prompts), {}
        if "perception" in self.kinds.values():
            levels = self._pooled(self.encoder.encode_text(self.perception_prompts))
            feats["levels_perception"] = levels.unsqueeze(0).expand(batch, -1, -1)
        if "generic" in self.kinds.values():
            levels = self._pooled(self.encoder.encode_text(alignment_level_prompts([GENERIC_PROMPT])))
            feats["levels_generic"] = levels.unsqueeze(0).expand(batch, -1, -1)
        if "alignment" in self.kinds.values() or self.caption is not None:
            texts = alignment_level_prompts(list(prompts))
            feats["levels_alignment"] = self._pooled(self.encoder.encode_text(texts)).view(
                batch, len(ALIGNMENT_LEVELS), -1
            )
        words = [prompt_words(p, self.max_words) for p in prompts]
        out = self.encoder.encode_text([w for ws in words for w in ws])
        feats["words"], mask = self._word_table(self._pooled(out), words)
        if self.concept_gamma:
            names = self.encoder.concept_text().to(out.summary.device)
            similarity = nn.functional.normalize(out.summary, dim=-1) @ nn.functional.normalize(names, dim=-1).T
            q = (similarity / self.concept_temperature).softmax(dim=-1)
            feats["word_concepts"] = self._word_table(q, words)[0]
        return {**feats, "words_mask": mask}

    def _word_table(self, flat: torch.Tensor, words: list[list[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, max_words, ...)`` rows of per-word ``flat`` values (zero-padded) and the ``(B, max_words)`` mask."""
        table = flat.new_zeros(len(words), self.max_words, *flat.shape[1:])
        mask = torch.zeros(len(words), self.max_words, dtype=torch.bool, device=flat.device)
        start = 0
        for row, ws in enumerate(words):
            table[row, : len(ws)] = flat[start : start + len(ws)]
            mask[row, : len(ws)] = True
            start += len(ws)
        return table, mask

    def _pooled(self, out: EncoderOutput) -> torch.Tensor:
        """What the features keep of an encoder output: the embedding, or its summary with ``project_in_head``."""
        if not self.projects_in_head:
            return out.pooled
        if out.summary is None:
            raise ValueError(f"tsp-mgs: project_in_head needs encoder summaries; {self.encoder.name} gives none")
        return out.summary

    def _adapt(self, x: torch.Tensor, adapter: nn.Linear | None, tower: str, name: str | None = None) -> torch.Tensor:
        if name in self.own_projections:
            x = self.own_projections[name][tower](x)
        elif self.projects_in_head:
            x = self.encoder.project(x, tower)
        return x if adapter is None else x + adapter(x)

    def alpha(self, name: str) -> torch.Tensor | float:
        """Eq. 7 weight of the resized image for dimension ``name``."""
        if name in self.alpha_logit:
            return torch.sigmoid(self.alpha_logit[name])
        return self.alpha_fixed[name]

    def _embedded(self, features: dict[str, torch.Tensor], name: str | None = None) -> tuple[torch.Tensor, ...]:
        """Image, patch (``(B, 1, D)`` each) and eq. 6 word terms of image and patch (``(B,)`` each) in the joint
        space of dimension ``name`` (the shared one unless ``name`` has ``own_projections``)."""
        image = self._adapt(features["image_pooled"], self.image_adapter, "image", name).unsqueeze(1)
        patch = self._adapt(features["patch_pooled"], self.image_adapter, "image", name).unsqueeze(1)
        words = self._adapt(features["words"], self.text_adapter, "text", name)
        mask = features["words_mask"]
        w_image = masked_mean(cosine(image, words).unsqueeze(-1), mask).squeeze(-1)
        w_patch = masked_mean(cosine(patch, words).unsqueeze(-1), mask).squeeze(-1)
        return image, patch, w_image, w_patch

    def forward_head(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Eq. 3-7 for every dimension."""
        shared = self._embedded(features)
        scale = self.log_scale.exp()
        match, caption_match = self.match_terms(features)
        scores = {}
        for name, kind in self.kinds.items():
            own = name in self.own_projections
            image, patch, w_image, w_patch = self._embedded(features, name) if own else shared
            levels = self._adapt(features[f"levels_{kind}"], self.text_adapter, "text", name)
            q_image = expected_level(scale * cosine(image, levels))
            q_patch = expected_level(scale * cosine(patch, levels))
            alpha = self.alpha(name)
            scores[name] = alpha * q_image + (1 - alpha) * q_patch
            if self.fine_grained[name]:
                scores[name] = scores[name] + (w_image + w_patch) / 2 * levels.shape[1]
            if name in self.concept_gamma:
                term = (
                    match if caption_match is None or not self.mix_fitted else match + self.match_ratio * caption_match
                )
                scores[name] = scores[name] + self.concept_gamma[name] * term.to(image.dtype) + self.concept_beta[name]
            if caption_match is not None and name in self.caption_gamma:
                scores[name] = scores[name] + self.caption_gamma[name] * caption_match.to(image.dtype)
        return scores

    def match_terms(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The concept match and the caption match, ``(B,)`` each in level units once fitted; None for a term the
        model does not have (or a caption map not fitted yet and no stand-in caption in ``features``)."""
        match = caption_match = None
        if self.concept_gamma:
            prior = self.concept_prior if self.concept_pmi and bool(self.concept_prior.sum() > 0) else None
            match = self.concept_log_match(
                features["concepts"], features["word_concepts"], features["words_mask"], prior
            )
            match = self._standard(match, 0)
        if self.caption is not None and ("caption" in features or self.caption.fitted):
            caption = features["caption"] if "caption" in features else self.caption(self.caption_input(features))
            caption_match = self._standard(self.caption.match(caption, self.caption_target(features)), 1)
        return match, caption_match

    def _standard(self, term: torch.Tensor, which: int) -> torch.Tensor:
        """A match term in level units: ``L (term - centre) / spread`` over the fitted rows (as is before a fit)."""
        if not hasattr(self, "match_stats"):
            return term
        centre, spread = self.match_stats[which]
        return (term.float() - centre) / spread * len(ALIGNMENT_LEVELS)

    def caption_input(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """What the caption map reads: the image summary and the log concept probabilities, ``(B, D + C)``."""
        concepts = features["concepts"].float().clamp_min(1e-6).log()
        return torch.cat([features["image_pooled"].float(), concepts], dim=-1)

    @staticmethod
    def caption_text(features: dict[str, torch.Tensor]) -> torch.Tensor:
        """The text the caption map is fitted to: the middle alignment level prompt, ``(B, D_text)``."""
        levels = features["levels_alignment"]
        return levels[:, levels.shape[1] // 2].float()

    def caption_target(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """``caption_text`` as the caption map's ``match`` meets it (``RidgeCaption.embed_target``), ``(B, D_text)``."""
        return (
            self.caption.embed_target(self.caption_text(features))
            if self.caption is not None
            else self.caption_text(features)
        )

    @property
    def fits_in_closed_form(self) -> bool:
        """Only with ``concept_pmi`` or ``caption_match``: the paper's TSP-MGS has no closed-form part."""
        return hasattr(self, "match_stats")

    def prefit(self, features: dict[str, torch.Tensor], fit: torch.Tensor, groups: Sequence[str]) -> dict:
        """Fit the concept prior and the caption map on rows ``fit`` (see ``QualityModel.prefit``).

        Returns:
            ``{"caption": (N, D_text)}``: out-of-fold captions on the fitted rows, the map's output elsewhere.
        """
        if not hasattr(self, "match_stats"):
            return {}
        self.match_stats.copy_(torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
        if self.concept_pmi:
            self.concept_prior.copy_(features["concepts"][fit].float().mean(0))
            concepts, words, mask = (features[k][fit] for k in ("concepts", "word_concepts", "words_mask"))
            match = self.concept_log_match(concepts, words, mask, self.concept_prior)
            self.match_stats[0] = torch.stack([match.mean(), match.std().clamp_min(1e-6)])
        if self.caption is None:
            return {}
        x = self.caption_input(features)
        out_of_fold = self.caption.fit(x[fit], self.caption_text(features)[fit], np.asarray(groups)[fit.cpu().numpy()])
        target = self.caption_target(features)
        with torch.no_grad():
            caption = self.caption(x)
        caption[fit] = out_of_fold.to(caption)
        match = self.caption.match(out_of_fold.to(target), target[fit])
        self.match_stats[1] = torch.stack([match.mean(), match.std().clamp_min(1e-6)])
        if self.mix_fitted:
            self.match_ratio.fill_(self.fit_mix(features, fit, groups, out_of_fold))
        return {"caption": caption}

    @torch.no_grad()
    def fit_mix(
        self, features: dict[str, torch.Tensor], fit: torch.Tensor, groups: Sequence[str], captions: torch.Tensor
    ) -> float:
        """The ``r`` of ``MATCH_MIXES`` under which ``M + r C`` is higher with a training row's own prompt than with
        the prompt of a random training row of another group, for the most rows (the first such ``r`` on ties).

        Args:
            features: Features of every row; ``fit`` the rows to choose on; ``groups`` every row's group.
            captions: ``(fit.sum(), D_text)`` out-of-fold captions of the fitted rows.
        """
        rows = fit.nonzero().squeeze(1).cpu()
        group = np.asarray(groups)[rows.numpy()]
        rng = np.random.default_rng(0)
        donors = rows[[rng.choice(np.flatnonzero(group != g)) for g in group]]
        concepts, target = features["concepts"][rows], self.caption_target(features)
        terms = []
        for prompt_rows in (rows, donors):
            words, mask = features["word_concepts"][prompt_rows], features["words_mask"][prompt_rows]
            m = self._standard(self.concept_log_match(concepts, words, mask, self.concept_prior), 0)
            c = self._standard(self.caption.match(captions.to(target), target[prompt_rows]), 1)
            terms.append((m, c))
        (m_own, c_own), (m_other, c_other) = terms
        shares = [float(((m_own + r * c_own) > (m_other + r * c_other)).float().mean()) for r in MATCH_MIXES]
        return MATCH_MIXES[int(np.argmax(shares))]

    @staticmethod
    def concept_log_match(
        concepts: torch.Tensor, word_concepts: torch.Tensor, mask: torch.Tensor, prior: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``M = mean_k log sum_c p(c) q_wk(c)`` over the unmasked words: ``(B,)``; with ``prior`` (``pbar``), the
        ``concept_pmi`` form ``mean_k [log sum_c p(c) q_wk(c) - log sum_c pbar(c) q_wk(c)]``."""
        per_word = torch.einsum("bc,bkc->bk", concepts.float(), word_concepts.float()).clamp_min(1e-6).log()
        if prior is not None:
            per_word = per_word - torch.einsum("c,bkc->bk", prior.float(), word_concepts.float()).clamp_min(1e-6).log()
        return masked_mean(per_word.unsqueeze(-1), mask).squeeze(-1)


@register_method("tsp-mgs")
def build_tsp_mgs(encoder: DualEncoder, card: ModelCard) -> TSPMGS:
    """Builder for cards with ``method: tsp-mgs`` (method_args: the keyword arguments of ``TSPMGS``)."""
    return build_from_card(TSPMGS, encoder, card)
