"""Options several commands share, and checking and loading the model they name."""

from __future__ import annotations

from typing import Annotated

import typer

from agiqa import api
from agiqa.cli.errors import fail, message

ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Model name (see `agiqa models`) or model folder; default agiqa-lite."),
]
AllowUntrainedOpt = Annotated[
    bool,
    typer.Option(
        "--allow-untrained",
        help="Score with a model that has no trained weights anyway (every score then carries a warning).",
    ),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1 ...")]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Items per model call.")]
ThreadsOpt = Annotated[
    int | None,
    typer.Option("--threads", min=1, help="Torch / ONNX Runtime CPU threads (default: cores not decoding)."),
]
RuntimeOpt = Annotated[
    str,
    typer.Option(
        "--runtime", help="Image tower: auto (ONNX Runtime on a CPU where possible), onnx or eager; same scores."
    ),
]
WorkersOpt = Annotated[int | None, typer.Option(min=0, help="Decoding processes (default: spare cores).")]


def check_model(model: str | None, allow_untrained: bool = False) -> api.ModelCard:
    """The card of ``--model``, read without loading the model; unknown, missing or untrained models exit 2."""
    name = model or api.DEFAULT_MODEL
    try:
        return api.model_card(name, allow_untrained=allow_untrained)
    except (KeyError, FileNotFoundError, ValueError) as err:
        raise fail(f"--model {message(err)}") from None


def load_scorer(
    model: str | None,
    device: str,
    max_pixels: int | None = None,
    threads: int | None = None,
    runtime: str = "auto",
    allow_untrained: bool = False,
) -> api.Scorer:
    """The scorer of ``--model`` on ``--device``; a model that cannot be loaded is a bad argument (exit 2)."""
    pixels = api.MAX_PIXELS if max_pixels is None else max_pixels
    if runtime not in api.RUNTIMES:
        raise fail(f"--runtime {runtime!r}: use one of {', '.join(api.RUNTIMES)}")
    try:
        return api.load(
            model, device=device, max_pixels=pixels, threads=threads, runtime=runtime, allow_untrained=allow_untrained
        )
    except (KeyError, FileNotFoundError, ValueError) as err:
        raise fail(f"--model {model or api.DEFAULT_MODEL}: {message(err)}") from None
