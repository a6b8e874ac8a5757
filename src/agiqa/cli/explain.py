"""``agiqa explain``: why an image scored as it did (levels, weakest phrases, worst region, heat-map).

Exit codes: 0 on success, 1 when the image or prompt cannot be explained (the message says why), 2 for bad
arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agiqa import api
from agiqa.cli.app import app
from agiqa.cli.errors import FAILED, fail, message, stderr
from agiqa.cli.options import AllowUntrainedOpt, DeviceOpt, ModelOpt, check_model, load_scorer


@app.command("explain")
def explain_command(
    image: Annotated[Path, typer.Argument(help="Image file to explain.")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The prompt the image was generated from.")] = "",
    model: ModelOpt = None,
    allow_untrained: AllowUntrainedOpt = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder for explanation.json, explanation.txt and heatmap.png."),
    ] = None,
    grid: Annotated[int, typer.Option("--grid", min=0, max=8, help="Region grid cells per side (0: none).")] = 3,
    weakest: Annotated[int, typer.Option("--weakest", min=1, help="How many weak phrases to name.")] = 1,
    device: DeviceOpt = "cpu",
    ask: Annotated[
        str | None, typer.Option("--ask", help="A question for a trained MINT-IQA explanation branch (--branch).")
    ] = None,
    branch: Annotated[
        Path | None, typer.Option("--branch", help="Folder of a trained explanation branch (branch.json).")
    ] = None,
) -> None:
    """Explain a model's scores for IMAGE: per-dimension levels, alignment by phrase and quality by region.

    The text report goes to stdout; with --out the JSON, the report and a PNG heat-map are written there.
    With --ask and --branch, a trained MINT-IQA instruction branch answers the question in words instead.
    """
    if ask is not None or branch is not None:
        _ask(image, prompt, ask, branch)
        return
    card = check_model(model, allow_untrained)
    if not image.is_file():
        raise fail(f"{image}: no such file")
    if not prompt.strip() and all(d.needs_prompt for d in card.dimensions):
        needing = ", ".join(d.name for d in card.dimensions)
        raise fail(f"model {card.name} scores {needing} against the prompt; give --prompt TEXT")
    scorer = load_scorer(model, device, allow_untrained=allow_untrained)
    try:
        explanation = scorer.explain(image, prompt, grid=grid, weakest=weakest)
    except api.ExplainError as err:
        raise fail(message(err), FAILED) from None
    if out is not None:
        files = api.write_explanation(explanation, image, out)
        stderr().print("wrote " + ", ".join(str(p) for p in files.values()))
    typer.echo(explanation.to_text(), nl=False)


def _ask(image: Path, prompt: str, question: str | None, branch: Path | None) -> None:
    if question is None or branch is None:
        raise fail("--ask QUESTION and --branch FOLDER go together")
    try:
        answerer = api.Answerer.load(branch)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise fail(f"--branch {message(err)}") from None
    try:
        answer = answerer.ask(image, prompt, question)
    except api.ExplainError as err:
        raise fail(message(err), FAILED) from None
    level = answer.level if answer.level is not None else "(the answer names no level)"
    typer.echo(f"Q: {answer.question}\nA: {answer.text}\nLevel: {level}")
