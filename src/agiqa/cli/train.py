"""``agiqa train CONFIG.yaml`` and ``agiqa protocol --method M --dataset D --root PATH``."""

from __future__ import annotations

from pathlib import Path

import typer

from agiqa.cli.app import app


@app.command("train")
def train_command(
    config: Path = typer.Argument(..., help="Training config (YAML), e.g. configs/lite/default.yaml."),
    out: Path = typer.Option(None, "--out", help="Model folder to write (default: runs/<config name>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint."),
    root: Path = typer.Option(None, "--root", help="Override data.root of the config."),
    epochs: int = typer.Option(None, "--epochs", help="Override train.epochs."),
    seed: int = typer.Option(None, "--seed", help="Override train.seed."),
    threads: int = typer.Option(
        None, "--threads", help="Torch CPU threads (1 is fastest for small heads on busy cores)."
    ),
) -> None:
    """Train a model; writes OUT/config.yaml + OUT/model.safetensors (load with `agiqa score --model OUT`)."""
    from agiqa.train import TrainConfig, train
    from agiqa.train.config import ConfigError

    try:
        cfg = TrainConfig.from_yaml(config)
        overrides = {
            "data": {"root": str(root)} if root else {},
            "train": {k: v for k, v in {"epochs": epochs, "seed": seed}.items() if v is not None},
        }
        cfg = cfg.replace(**{k: v for k, v in overrides.items() if v})
    except ConfigError as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(2) from None
    out = out or Path("runs") / cfg.name
    result = train(cfg, out_dir=out, resume=resume)
    best = f", best validation {result.best_val:.4f}" if result.best_val is not None else ""
    typer.echo(f"trained {cfg.name}: {result.steps} steps in {result.seconds:.1f} s{best}; wrote {result.out_dir}")


@app.command("protocol")
def protocol_command(
    method: str = typer.Option(
        ..., "--method", help="Method (tsp-mgs, prefiqa, mint-iqa, ip-iqa ...) or a config name."
    ),
    dataset: str = typer.Option(..., "--dataset", help="Dataset registry name, e.g. agiqa3k."),
    root: Path = typer.Option(..., "--root", help="Folder the dataset was unpacked to."),
    splits: int = typer.Option(10, "--splits", help="Number of grouped 4:1 splits."),
    config: Path = typer.Option(None, "--config", help="Training config (default: configs/lite/<method>.yaml)."),
    splits_file: Path = typer.Option(
        None, "--splits-file", help="Stored splits (default: benchmarks/splits/<dataset>.json, made once)."
    ),
    out: Path = typer.Option(Path("benchmarks/results"), "--out", help="Folder of the result files."),
    robustness: bool = typer.Option(True, "--robustness/--no-robustness", help="Flip + centre-crop report."),
    threads: int = typer.Option(None, "--threads", help="Torch CPU threads."),
) -> None:
    """Train and test on stored grouped splits; writes protocol_<method>_<dataset>.{csv,json,md}."""
    from rich.console import Console

    from agiqa.data import load_dataset
    from agiqa.eval.report import rich_table
    from agiqa.train import TrainConfig
    from agiqa.train.config import ConfigError
    from agiqa.train.protocol import ROBUSTNESS_RATIOS, run_protocol, stored_splits, write_protocol

    path = config or Path("configs/lite") / f"{method}.yaml"
    try:
        cfg = TrainConfig.from_yaml(path).replace(
            data={"dataset": dataset, "root": str(root)}, train={"num_threads": threads} if threads else {}
        )
    except ConfigError as err:
        typer.secho(f"error: {err} (give --config for a method without a configs/lite file)", fg="red", err=True)
        raise typer.Exit(2) from None
    data = load_dataset(dataset, root)
    split_list = stored_splits(data, splits_file or Path("benchmarks/splits") / f"{dataset}.json", splits)
    result = run_protocol(cfg, data, split_list, ROBUSTNESS_RATIOS if robustness else ())
    json_path, md_path = write_protocol(result, out, f"protocol_{method}_{dataset}")
    Console().print(rich_table(result.table, title=f"{cfg.name} on {dataset}"))
    typer.echo(f"wrote {json_path} and {md_path}")
