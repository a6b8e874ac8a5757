"""``agiqa score --engine ray`` and ``agiqa.api.score_dataset`` on a real local Ray instance (2 CPUs, small store).

Scores through Ray Data actors must equal the local pipeline's; a rerun skips the parquet shards already written.
"""

from __future__ import annotations

import hashlib
import io
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from agiqa import api
from agiqa.cli import app

ray = pytest.importorskip("ray", reason="Ray Data is the 'ray' extra (also in 'dev'): pip install 'agiqa[ray]'")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, object_store_memory=96 * 2**20, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def scorer() -> api.Scorer:
    return api.load(threads=1)


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    arr[:, : 10 * (seed % 5 + 1)] = (40 * seed) % 256
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _run(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})
    if result.exc_info is not None and not isinstance(result.exception, SystemExit):  # what broke, in the report
        return result.exit_code, result.output + "".join(traceback.format_exception(*result.exc_info))
    return result.exit_code, result.output


def test_parquet_shards_of_bytes_score_as_locally(tmp_path: Path, scorer: api.Scorer) -> None:
    shards = tmp_path / "in"
    shards.mkdir()
    prompts = ["a red apple", "a city at night", "a cat, oil painting", "a mountain lake"]
    images = [_jpeg(k) for k in range(6)]
    for name, rows in (("part-a", range(0, 4)), ("part-b", range(4, 6))):
        frame = pd.DataFrame({"image": [images[k] for k in rows], "prompt": [prompts[k % 4] for k in rows]})
        frame.assign(id=[f"item{k}" for k in rows]).to_parquet(shards / f"{name}.parquet")
    out = tmp_path / "out"
    code, output = _run("score", "--engine", "ray", "--input", shards, "--out", out, "--actors", "1", "-b", "3")
    assert code == 0, output
    assert sorted(p.name for p in out.iterdir()) == ["part-a.parquet", "part-b.parquet"]
    got = pd.concat([pd.read_parquet(out / "part-a.parquet"), pd.read_parquet(out / "part-b.parquet")])
    assert got["id"].tolist() == [f"item{k}" for k in range(6)]  # input order and columns kept
    assert got["image"].tolist() == ["sha1:" + hashlib.sha1(b).hexdigest() for b in images]
    local = scorer.score(images, [prompts[k % 4] for k in range(6)])
    for dim in ("quality", "alignment"):
        np.testing.assert_allclose(got[dim].to_numpy(), local.scores[dim], rtol=1e-6, atol=1e-6)
    assert (got["error"] == "").all()

    before = (out / "part-b.parquet").read_bytes()
    (out / "part-a.parquet").unlink()
    code, output = _run("score", "--engine", "ray", "--input", shards, "--out", out)
    assert code == 0 and "into 1 new shard(s)" in output, output  # part-b was skipped
    assert (out / "part-b.parquet").read_bytes() == before
    rescored = pd.read_parquet(out / "part-a.parquet")  # default batch size this time: float32 last bits may move
    pd.testing.assert_frame_equal(rescored, got.iloc[:4].reset_index(drop=True), rtol=1e-6, atol=1e-6)


def test_python_entry_point_takes_and_returns_a_dataset(scorer: api.Scorer) -> None:
    images = [_jpeg(k) for k in range(10, 13)] + [b"not an image"]
    ds = ray.data.from_pandas(pd.DataFrame({"image": images, "prompt": ["a red apple"] * 4, "seed": [1, 2, 3, 4]}))
    scored = api.score_dataset(ds, actors=1, batch_size=2)
    assert isinstance(scored, ray.data.Dataset)
    frame = scored.to_pandas().sort_values("seed")
    local = scorer.score(images, "a red apple")
    np.testing.assert_allclose(frame["quality"].to_numpy(), local.scores["quality"], rtol=1e-6, atol=1e-6)
    assert frame["error"].tolist()[:3] == ["", "", ""] and frame["error"].tolist()[3] == local.errors[3] != ""


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_agiqa3k_table_through_ray_matches_local(agiqa3k_root: Path, tmp_path: Path, scorer: api.Scorer) -> None:
    labels = pd.read_csv(agiqa3k_root / "data.csv").iloc[::8].head(240)  # 240 images across prompts and generators
    table = tmp_path / "table.csv"
    labels.rename(columns={"name": "image"})[["image", "prompt", "mos_quality"]].to_csv(table, index=False)
    out = tmp_path / "scores"
    args = ["score", agiqa3k_root / "images", "--input", table, "--out", out, "--engine", "ray", "--actors", "2"]
    code, output = _run(*args, "--chunk-size", "80")
    assert code == 0, output
    assert sorted(p.name for p in out.iterdir()) == [f"shard-{k:06d}.parquet" for k in range(3)]
    got = pd.concat([pd.read_parquet(p) for p in sorted(out.iterdir())], ignore_index=True)
    assert got["image"].tolist() == labels["name"].tolist() and (got["error"] == "").all()
    assert got["mos_quality"].tolist() == labels["mos_quality"].astype(str).tolist()
    sample = list(range(0, 240, 5))  # 48 images scored again locally
    paths = [agiqa3k_root / "images" / labels["name"].iloc[i] for i in sample]
    local = scorer.score(paths, labels["prompt"].iloc[sample].tolist())
    for dim in ("quality", "alignment"):
        np.testing.assert_allclose(got[dim].to_numpy()[sample], local.scores[dim], rtol=1e-6, atol=1e-6)
    code, output = _run(*args, "--chunk-size", "80")
    assert code == 0 and "into 0 new shard(s)" in output, output


def test_fsspec_http_import_settles_the_same_way_in_every_thread() -> None:
    """Ray's threaded file listing treats only ModuleNotFoundError as 'no HTTP filesystem'; a plain ImportError
    (a thread meeting the module half-imported) failed whole reads before ``_settle_fsspec_http``."""
    from concurrent.futures import ThreadPoolExecutor

    from agiqa.pipeline.ray_data import _settle_fsspec_http

    def attempt(_: int) -> str:
        try:
            from fsspec.implementations.http import HTTPFileSystem  # noqa: F401
        except ModuleNotFoundError:
            return "absent"
        except ImportError as err:  # what broke Ray's listing
            return f"broken: {err}"
        return "present"

    _settle_fsspec_http()
    with ThreadPoolExecutor(8) as pool:
        outcomes = set(pool.map(attempt, range(64)))
    assert len(outcomes) == 1 and outcomes <= {"absent", "present"}, outcomes
