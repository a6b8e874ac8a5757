"""Whether a model can give meaningful scores here, read from its card and files without building it.

A model is in one of four states:

* ``trained``: its card names a weights file and the file is here.
* ``weights missing``: its card names a weights file that is not here.
* ``zero-shot``: no weights, and none are needed (a zero-shot method over an encoder with a trained joint space).
* ``untrained``: no weights, but the scores mean nothing until the heads are trained.

Whether a model needs training is declared, never guessed from its name: the card's ``needs_training`` when set,
else the ``needs_training`` of the ``QualityModel`` class its method's builder is annotated to return.
"""

from __future__ import annotations

import typing

from agiqa.models.card import ModelCard
from agiqa.models.registry import METHODS, weights_path

TRAINED, WEIGHTS_MISSING, ZERO_SHOT, UNTRAINED = "trained", "weights missing", "zero-shot", "untrained"
STATES = (TRAINED, ZERO_SHOT, UNTRAINED, WEIGHTS_MISSING)
USABLE = (TRAINED, ZERO_SHOT)
"""States whose scores mean something."""


class UntrainedModelError(ValueError):
    """A model without trained weights was asked to score (pass ``allow_untrained=True`` to score it anyway)."""


def needs_training(card: ModelCard) -> bool:
    """The card's ``needs_training``, else its method's declaration (True when the method declares nothing)."""
    if card.needs_training is not None:
        return card.needs_training
    builder = METHODS.get(card.method)
    try:
        made = typing.get_type_hints(builder).get("return", builder)
    except (NameError, TypeError):  # an unannotated or unresolvable builder declares nothing
        made = builder
    return bool(getattr(made, "needs_training", True))


def model_state(card: ModelCard) -> str:
    """One of ``STATES`` (see module docstring)."""
    path = weights_path(card)
    if path is not None:
        return TRAINED if path.is_file() else WEIGHTS_MISSING
    return UNTRAINED if needs_training(card) else ZERO_SHOT


def untrained_message(card: ModelCard, reference: str, config: str = "CONFIG") -> str:
    """Why ``card`` is refused for scoring, and the three ways forward.

    Args:
        card: The untrained model's card.
        reference: How the user named the model.
        config: A training config that trains it (a shipped name), for the suggested command.
    """
    return (
        f"model {reference!r} is untrained: it has no trained weights, so its scores mean nothing. Train it "
        f"(`agiqa train {config} --out runs/{card.name}`, then use runs/{card.name}), name a trained model "
        "(`agiqa models` shows each model's state), or pass allow_untrained=True (--allow-untrained) to score "
        "it anyway, with a warning on every score"
    )


def untrained_warning(reference: str) -> str:
    """The warning every score of an untrained model carries."""
    return f"model {reference} is untrained: this score means nothing"
