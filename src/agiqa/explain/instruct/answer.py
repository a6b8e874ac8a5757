"""Asking a trained MINT-IQA explanation branch about one image: ``Answerer.load(folder).ask(image, prompt, q)``.

A branch folder (written by ``benchmarks/bench_explain.py vqa``) holds ``branch.safetensors`` and ``branch.json``:
``scoring`` (the trained scoring model folder or name), ``connection`` (bool), ``qformer`` (``QFormer`` keyword
arguments) and ``llm`` (``smollm2`` or a local causal-LM folder).

Bad input never produces an invented answer: empty or over-long questions and questions about a dimension the
scoring model does not assess are refused (``ExplainError``); an answer to a level question that names no level is
returned with ``level=None``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from agiqa.data.images import ImageRef
from agiqa.explain.instruct.branch import AgiqaInstructionQFormer, InstructionBranch, check_question
from agiqa.explain.instruct.vqa import match
from agiqa.models.layers.qformer import QFormer
from agiqa.models.llm import FrozenLLM, load_causal_lm, load_smollm2
from agiqa.models.mint_iqa import MINTIQA

DEFAULT_QFORMER = {
    "hidden_size": 256,
    "num_layers": 2,
    "num_heads": 4,
    "num_queries": 8,
    "cross_attention_frequency": 1,
}


@dataclass(frozen=True)
class Answer:
    """A generated answer and the level it names (None when it names none)."""

    question: str
    text: str
    level: str | None


class Answerer:
    """A trained instruction branch over its scoring model (see module docstring).

    Args:
        scoring: The trained MINT-IQA scoring model (its encoder and Q-Former are frozen).
        branch: The trained instruction branch.
    """

    def __init__(self, scoring: MINTIQA, branch: InstructionBranch) -> None:
        self.scoring = scoring.eval()
        self.branch = branch.eval()

    @classmethod
    def load(cls, folder: str | Path, scoring: str | None = None, llm: FrozenLLM | None = None) -> Answerer:
        """Rebuild a branch from its folder.

        Args:
            folder: Folder with ``branch.json`` and ``branch.safetensors``.
            scoring: Scoring model name or folder overriding ``branch.json``'s.
            llm: An already loaded LLM (else loaded as ``branch.json`` says).
        """
        from agiqa.models.registry import create_model

        folder = Path(folder)
        config_path = folder / "branch.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"{folder}: no branch.json; train a branch with benchmarks/bench_explain.py vqa")
        config = json.loads(config_path.read_text())
        source = scoring or config.get("scoring")
        if not source:
            raise ValueError(f"{config_path}: no 'scoring' model recorded; pass scoring=NAME_OR_FOLDER")
        model = create_model(source)
        if not isinstance(model, MINTIQA):
            raise ValueError(f"{source}: not a MINT-IQA scoring model (it has no Q-Former queries to connect)")
        if llm is None:
            name = config.get("llm", "smollm2")
            llm = load_smollm2() if name == "smollm2" else load_causal_lm(name)
        qformer = QFormer(
            model.encoder.image_token_dim,
            model.encoder.text_token_dim,
            **{**DEFAULT_QFORMER, **config.get("qformer", {})},
        )
        width = model.qformer.hidden_size if config.get("connection", True) else None
        branch = InstructionBranch(AgiqaInstructionQFormer(qformer, model.encoder.encode_text), llm, width)
        branch.load_weights(folder)
        return cls(model, branch)

    @torch.no_grad()
    def ask(self, image: ImageRef, prompt: str, question: str, max_new_tokens: int = 32) -> Answer:
        """Answer one question about one (image, prompt).

        Raises:
            ExplainError: Unreadable image, or a question that cannot be asked (empty, too long, other dimension).
        """
        from agiqa.explain import ExplainError, open_image

        try:
            question = check_question(question, [d.name for d in self.scoring.dimensions])
        except ValueError as err:
            raise ExplainError(str(err)) from None
        decoded, _ = open_image(image)
        pixels = self.scoring.preprocess(decoded).unsqueeze(0)
        features = {**self.scoring.image_features(pixels), **self.scoring.text_features([prompt])}
        queries = self.scoring.queries(features)
        text = self.branch.generate(features["image_tokens"], queries, [question], max_new_tokens)[0]
        return Answer(question, text, match(text))
