"""The options of ``agiqa score`` that use the model's reference: ``--percentiles`` and ``--keep`` (with
``--kept-out``, ``--copy-to``, ``--link-to``); checked before scoring, applied to the finished table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from agiqa import api
from agiqa.cli.errors import fail, message, stderr

PercentilesOpt = Annotated[
    bool,
    typer.Option(
        "--percentiles", help="Add <dim>_pct columns: each score's percentile (0-100) against the model's reference."
    ),
]
KeepOpt = Annotated[
    str | None,
    typer.Option(
        "--keep",
        help='Mark the rows to keep in a "kept" column, e.g. "quality>=p60 and alignment>=2.5" (pNN: percentile '
        "NN of the model's reference; and, or, not, parentheses). Rows with an error are never kept.",
    ),
]
KeptOutOpt = Annotated[Path | None, typer.Option("--kept-out", help="Also write the kept rows alone to this table.")]
CopyToOpt = Annotated[Path | None, typer.Option("--copy-to", help="Copy the kept images into this folder.")]
LinkToOpt = Annotated[Path | None, typer.Option("--link-to", help="Symlink the kept images into this folder.")]


def keep_plan(
    scorer: api.Scorer,
    out: Path,
    input_columns: Sequence[str],
    percentiles: bool,
    keep: str | None,
    kept_out: Path | None,
    copy_to: Path | None,
    link_to: Path | None,
) -> api.KeepPlan:
    """The checked plan; a mistake in the options or the expression is a bad argument (exit 2)."""
    try:
        return api.plan_keep(
            [d.name for d in scorer.dimensions],
            scorer.reference,
            percentiles=percentiles,
            keep=keep,
            kept_out=kept_out,
            copy_to=copy_to,
            link_to=link_to,
            out=out,
            input_columns=input_columns,
            model_name=scorer.name,
        )
    except api.KeepError as err:
        raise fail(f"--keep: {err}") from None
    except ValueError as err:
        raise fail(message(err)) from None


def apply_plan(plan: api.KeepPlan, out: Path, files: Sequence[Path]) -> None:
    """Add the columns, write the kept rows and place the kept images; say what was done."""
    if not plan.active:
        return
    try:
        done = api.apply_keep(plan, out, files)
    except (OSError, ValueError) as err:
        raise fail(message(err), code=1) from None
    if plan.rule is not None:
        where = [f"kept rows in {done.kept_out}"] if done.kept_out else []
        if done.place_in is not None:
            where.append(f"{'linked' if plan.link else 'copied'} {done.placed} images to {done.place_in}")
        extra = f"; {', '.join(where)}" if where else ""
        stderr().print(f"kept {done.kept} of {done.total} rows ({plan.rule.text}){extra}", highlight=False)
