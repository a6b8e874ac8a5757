"""MINT-IQA's instruction-aware branch (001, sec. IV-B, IV-C-2, Table XV): explaining scores in words.

A second Q-Former reads the image tokens (cross-attention) next to the instruction's tokens (self-attention). Its
input queries are its own learnable queries *plus* the scoring branch's quality-aware queries passed through a
**zero-initialised connection** (the paper's "zero convolution": a 1x1 convolution over the query sequence, i.e.
a per-query linear map, weights and bias zero at start). At initialisation the connection outputs exactly zero,
so the branch computes what it would without it; training opens it. When the two branches have different numbers
of queries, the scoring queries are averaged and the connection's output is added to every instruction query
(documented choice; the paper's branches both have 32).

The instruction-aware queries are projected by a fully connected layer into the input-embedding space of a
frozen LLM and prepended to the question; the branch is trained with the language-modelling loss on the answer
tokens only (question and visual positions are masked out of the loss). The LLM and the image/text encoders stay
frozen; trainable are the second Q-Former, the connection and the projection.

Backends (``llm``): SmolLM2-135M-Instruct over the agiqa ``QFormer`` (instruction encoded by the scoring model's
frozen text tower, as in the paper's "instruction ... encoded by a text encoder"), or InstructBLIP + Vicuna, whose
pre-trained Q-Former, query tokens, projection and LLM are reused (``load_instructblip``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from agiqa.encoders.base import EncoderOutput
from agiqa.models.layers.qformer import QFormer
from agiqa.models.llm import FrozenLLM

MAX_QUESTION_CHARS = 500
DIMENSION_WORDS = {
    "quality": ("quality", "clarity", "blur", "sharp", "detail", "noise"),
    "authenticity": ("authentic", "realistic", "distort", "natural"),
    "correspondence": ("correspond", "align", "consistent", "match the prompt", "prompt"),
    "aesthetics": ("aesthetic", "beautiful"),
}
SAME_DIMENSION = {"alignment": "correspondence"}


class ZeroLinear(nn.Linear):
    """A linear map whose weights and bias start at zero (ControlNet's "zero convolution" on a token sequence)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features)
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)


def check_question(question: str, dimensions: Sequence[str] | None = None, max_chars: int = MAX_QUESTION_CHARS) -> str:
    """Validate a user's question; returns it stripped.

    Args:
        question: The instruction.
        dimensions: Dimensions the model knows; a question about another known dimension is refused.
        max_chars: Longest accepted question.

    Raises:
        ValueError: Empty or over-long question, or a question about a dimension the model lacks.
    """
    text = (question or "").strip()
    if not text:
        raise ValueError("the question is empty; ask e.g. 'How is the quality of the image?'")
    if len(text) > max_chars:
        raise ValueError(f"the question has {len(text)} characters; keep it under {max_chars}")
    if dimensions is not None:
        known = {SAME_DIMENSION.get(d, d) for d in dimensions}
        lowered = text.lower()
        asked = [d for d, words in DIMENSION_WORDS.items() if any(re.search(rf"\b{w}", lowered) for w in words)]
        if asked and not set(asked) & known:
            raise ValueError(
                f"the question is about {', '.join(asked)}, which this model does not assess; "
                f"it answers about {', '.join(sorted(known))}"
            )
    return text


class AgiqaInstructionQFormer(nn.Module):
    """The agiqa ``QFormer`` with the instruction encoded by a frozen text tower (cached per question).

    Args:
        qformer: A ``QFormer`` built with ``text_dim`` = the text tower's token width.
        encode_text: The frozen text tower (e.g. the scoring model's ``encoder.encode_text``).
    """

    def __init__(self, qformer: QFormer, encode_text: Callable[[list[str]], EncoderOutput]) -> None:
        super().__init__()
        self.qformer = qformer
        self.encode_text = encode_text
        self._cache: dict[str, torch.Tensor] = {}

    @property
    def hidden_size(self) -> int:
        return self.qformer.hidden_size

    @property
    def num_queries(self) -> int:
        return self.qformer.num_queries

    @torch.no_grad()
    def _instruction(self, questions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        new = [q for q in dict.fromkeys(questions) if q not in self._cache]
        if new:
            out = self.encode_text(new)
            for i, q in enumerate(new):
                keep = out.mask[i] if out.mask is not None else slice(None)
                self._cache[q] = out.tokens[i][keep].detach()
        rows = [self._cache[q] for q in questions]
        length = max(r.shape[0] for r in rows)
        tokens = rows[0].new_zeros(len(rows), length, rows[0].shape[-1])
        mask = torch.zeros(len(rows), length, dtype=torch.bool, device=tokens.device)
        for i, r in enumerate(rows):
            tokens[i, : r.shape[0]], mask[i, : r.shape[0]] = r, True
        return tokens, mask

    def forward(
        self, image_tokens: torch.Tensor, questions: Sequence[str], query_offset: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Instruction-aware queries ``(B, num_queries, hidden_size)``."""
        tokens, mask = self._instruction(questions)
        return self.qformer(
            image_tokens,
            tokens.to(image_tokens.device),
            text_mask=mask.to(image_tokens.device),
            query_offset=query_offset,
        )


class InstructBlipInstructionQFormer(nn.Module):
    """InstructBLIP's pre-trained Q-Former and query tokens; the instruction goes through its BERT tokenizer.

    Args:
        qformer: ``InstructBlipForConditionalGeneration.qformer``.
        query_tokens: Its ``query_tokens`` parameter.
        tokenizer: Its Q-Former tokenizer (``qformer_tokenizer``).
    """

    def __init__(self, qformer: nn.Module, query_tokens: nn.Parameter, tokenizer: object) -> None:
        super().__init__()
        self.qformer = qformer
        self.query_tokens = query_tokens
        self.tokenizer = tokenizer

    @property
    def hidden_size(self) -> int:
        return self.query_tokens.shape[-1]

    @property
    def num_queries(self) -> int:
        return self.query_tokens.shape[1]

    def forward(
        self, image_tokens: torch.Tensor, questions: Sequence[str], query_offset: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Instruction-aware queries ``(B, num_queries, hidden_size)``."""
        batch = image_tokens.shape[0]
        queries = self.query_tokens.expand(batch, -1, -1)
        if query_offset is not None:
            queries = queries + query_offset
        text = self.tokenizer(list(questions), padding=True, truncation=True, max_length=128, return_tensors="pt")
        mask = torch.cat([torch.ones(batch, self.num_queries, dtype=torch.long), text["attention_mask"]], dim=1)
        out = self.qformer(
            input_ids=text["input_ids"].to(image_tokens.device),
            attention_mask=mask.to(image_tokens.device),
            query_embeds=queries,
            encoder_hidden_states=image_tokens,
            encoder_attention_mask=torch.ones(image_tokens.shape[:2], dtype=torch.long, device=image_tokens.device),
        )
        return out.last_hidden_state[:, : self.num_queries]


class InstructionBranch(nn.Module):
    """Second Q-Former + zero-initialised connection + projection into a frozen LLM (see module docstring).

    Args:
        qformer: ``AgiqaInstructionQFormer`` or ``InstructBlipInstructionQFormer``.
        llm: The frozen LLM (kept outside the module's parameters and state dict).
        score_query_dim: Width of the scoring branch's queries; None builds the branch without the connection
            (Table XV's "without").
        projection: Q-Former -> LLM projection (default: a new linear layer; InstructBLIP passes its own).
    """

    def __init__(
        self,
        qformer: nn.Module,
        llm: FrozenLLM,
        score_query_dim: int | None,
        projection: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.qformer = qformer
        self.connection = ZeroLinear(score_query_dim, qformer.hidden_size) if score_query_dim else None
        self.projection = projection if projection is not None else nn.Linear(qformer.hidden_size, llm.hidden_size)
        self.llm = llm

    def query_offset(self, score_queries: torch.Tensor | None) -> torch.Tensor | None:
        """The connection's contribution to the instruction queries (None without a connection)."""
        if self.connection is None or score_queries is None:
            return None
        offset = self.connection(score_queries)
        if offset.shape[1] != self.qformer.num_queries:
            offset = offset.mean(dim=1, keepdim=True).expand(-1, self.qformer.num_queries, -1)
        return offset

    def visual_tokens(
        self, image_tokens: torch.Tensor, score_queries: torch.Tensor | None, questions: Sequence[str]
    ) -> torch.Tensor:
        """Instruction-aware representations projected into the LLM: ``(B, num_queries, llm_hidden)``."""
        queries = self.qformer(image_tokens, questions, self.query_offset(score_queries))
        return self.projection(queries)

    def instruction_queries(
        self, image_tokens: torch.Tensor, score_queries: torch.Tensor | None, questions: Sequence[str]
    ) -> torch.Tensor:
        """The instruction-aware representations before projection (the feedback stage reads these)."""
        return self.qformer(image_tokens, questions, self.query_offset(score_queries))

    def _sequences(
        self, visual: torch.Tensor, questions: Sequence[str], answers: Sequence[str] | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded ``[visual | question | answer]`` embeddings, attention mask and labels (-100 = no loss)."""
        device, rows, labels = visual.device, [], []
        for i, question in enumerate(questions):
            q_ids = self.llm.question_ids(question)
            a_ids = self.llm.answer_ids(answers[i]) if answers is not None else []
            ids = torch.tensor(q_ids + a_ids, device=device)
            rows.append(torch.cat([visual[i], self.llm.embed(ids).to(visual.dtype)]))
            labels.append(torch.tensor([-100] * (visual.shape[1] + len(q_ids)) + a_ids, device=device))
        length = max(r.shape[0] for r in rows)
        embeds = visual.new_zeros(len(rows), length, visual.shape[-1])
        mask = torch.zeros(len(rows), length, dtype=torch.long, device=device)
        target = torch.full((len(rows), length), -100, dtype=torch.long, device=device)
        for i, (r, lab) in enumerate(zip(rows, labels, strict=False)):
            embeds[i, : r.shape[0]], mask[i, : r.shape[0]], target[i, : r.shape[0]] = r, 1, lab
        return embeds, mask, target

    def loss(
        self,
        image_tokens: torch.Tensor,
        score_queries: torch.Tensor | None,
        questions: Sequence[str],
        answers: Sequence[str],
    ) -> torch.Tensor:
        """Language-modelling loss on the answer tokens (mean over answer tokens of the batch)."""
        visual = self.visual_tokens(image_tokens, score_queries, questions)
        embeds, mask, target = self._sequences(visual, questions, answers)
        return self.llm.model(inputs_embeds=embeds, attention_mask=mask, labels=target).loss

    @torch.no_grad()
    def generate(
        self,
        image_tokens: torch.Tensor,
        score_queries: torch.Tensor | None,
        questions: Sequence[str],
        max_new_tokens: int = 32,
    ) -> list[str]:
        """Greedy answers, one per (image, question); questions of equal token length are batched together."""
        visual = self.visual_tokens(image_tokens, score_queries, questions)
        lengths = [len(self.llm.question_ids(q)) for q in questions]
        answers: list[str] = [""] * len(questions)
        for length in sorted(set(lengths)):
            idx = [i for i, n in enumerate(lengths) if n == length]
            embeds, mask, _ = self._sequences(visual[idx], [questions[i] for i in idx], None)
            out = self.llm.model.generate(
                inputs_embeds=embeds,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.llm.tokenizer.pad_token_id,
            )
            for row, i in enumerate(idx):
                answers[i] = self.llm.decode(out[row])
        return answers

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The branch's own weights (LLM excluded; it is frozen and loaded from its own files)."""
        return {k: v.detach().contiguous() for k, v in self.state_dict().items()}

    def save(self, folder: str | Path, config: dict) -> Path:
        """Write ``branch.safetensors`` and ``branch.json`` (``config`` describes how to rebuild the branch)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(self.trainable_state_dict(), str(folder / "branch.safetensors"))
        (folder / "branch.json").write_text(json.dumps(config, indent=2) + "\n")
        return folder

    def load_weights(self, folder: str | Path) -> None:
        """Load ``branch.safetensors`` strictly (every key must fit)."""
        path = Path(folder) / "branch.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no trained branch there; train one with benchmarks/bench_explain.py")
        self.load_state_dict(load_file(str(path)), strict=True)


def load_instructblip(folder: str | Path) -> tuple[nn.Module, InstructBlipInstructionQFormer, nn.Module, FrozenLLM]:
    """InstructBLIP (+ Vicuna) from a local folder, split into the parts the branch reuses.

    The folder is what ``InstructBlipForConditionalGeneration.save_pretrained`` writes, with the LLM tokenizer
    beside it and the Q-Former tokenizer in ``qformer_tokenizer/`` (as ``InstructBlipProcessor`` saves them).

    Returns:
        (frozen vision model, instruction Q-Former, language projection, frozen LLM).
    """
    from transformers import AutoTokenizer, InstructBlipForConditionalGeneration

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: not an InstructBLIP folder (no config.json)")
    if not (folder / "qformer_tokenizer").is_dir():
        raise FileNotFoundError(f"{folder}: no qformer_tokenizer/ folder; save the InstructBlipProcessor there")
    blip = InstructBlipForConditionalGeneration.from_pretrained(
        str(folder), local_files_only=True, use_safetensors=True
    )
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    qtok = AutoTokenizer.from_pretrained(str(folder / "qformer_tokenizer"), local_files_only=True)
    vision = blip.vision_model.eval().requires_grad_(False)
    qformer = InstructBlipInstructionQFormer(blip.qformer, blip.query_tokens, qtok)
    llm = FrozenLLM(blip.language_model, tokenizer, name=f"instructblip:{folder}", chat=False)
    return vision, qformer, blip.language_projection, llm
