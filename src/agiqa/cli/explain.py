"""``agiqa explain``: why an image scored as it did (levels, weakest phrases, worst region, heat-map).

Exit codes: 0 on success, 1 when the image or prompt cannot be explained (the message says why), 2 for bad
arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from agiqa.cli.app import app

err = Console(stderr=True)


@app.command("explain")
def explain_command(
    image: Annotated[Path, typer.Argument(help="Image file to explain.")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The prompt the image was generated from.")] = "",
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model name or folder; default agiqa-lite.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder for explanation.json, explanation.txt and heatmap.png."),
    ] = None,
    grid: Annotated[int, typer.Option("--grid", min=0, max=8, help="Region grid cells per side (0: none).")] = 3,
    weakest: Annotated[int, typer.Option("--weakest", min=1, help="How many weak phrases to name.")] = 1,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda ...")] = "cpu",
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
    from agiqa.api import DEFAULT_MODEL, load
    from agiqa.explain import ExplainError, explain, write_explanation

    if ask is not None or branch is not None:
        _ask(image, prompt, ask, branch)
        return

    try:
        scorer = load(model or DEFAULT_MODEL, device=device)
    except (KeyError, FileNotFoundError, ValueError) as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    try:
        explanation = explain(scorer.model, image, prompt, model_name=scorer.name, grid=grid, weakest=weakest)
    except ExplainError as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(1) from None
    if out is not None:
        files = write_explanation(explanation, image, out)
        err.print("wrote " + ", ".join(str(p) for p in files.values()))
    typer.echo(explanation.to_text(), nl=False)


def _ask(image: Path, prompt: str, question: str | None, branch: Path | None) -> None:
    from agiqa.explain import ExplainError
    from agiqa.explain.answer import Answerer

    if question is None or branch is None:
        err.print("[red]error:[/red] --ask QUESTION and --branch FOLDER go together")
        raise typer.Exit(2)
    try:
        answerer = Answerer.load(branch)
    except (FileNotFoundError, ValueError, KeyError) as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    try:
        answer = answerer.ask(image, prompt, question)
    except ExplainError as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(1) from None
    level = answer.level if answer.level is not None else "(the answer names no level)"
    typer.echo(f"Q: {answer.question}\nA: {answer.text}\nLevel: {level}")
