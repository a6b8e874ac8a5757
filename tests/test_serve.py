"""The HTTP service, through FastAPI's TestClient (no network)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scoring_fixtures import write_tiny_model

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart", reason="the server extra needs python-multipart: pip install 'agiqa[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

from agiqa.api import Scorer, load  # noqa: E402
from agiqa.serve import ServeOptions, create_app  # noqa: E402


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory) -> Scorer:
    return load(str(write_tiny_model(tmp_path_factory.mktemp("tiny"))))


@pytest.fixture(scope="module")
def client(scorer: Scorer) -> TestClient:
    return TestClient(create_app(scorer, ServeOptions(max_image_bytes=20_000, max_images=4)))


def _png(seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_health_and_models(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"] == "test-tiny"
    assert health["dimensions"] == ["quality", "alignment"] and health["queue"]["places"] == 32
    models = client.get("/models").json()
    assert models["loaded"] == "test-tiny" and isinstance(models["models"], list)


def test_score_matches_the_python_api(client: TestClient, scorer: Scorer) -> None:
    files = [("images", ("a.png", _png(0), "image/png")), ("images", ("b.png", _png(1), "image/png"))]
    response = client.post("/score", files=files, data={"prompt": "a red fox"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [d["name"] for d in body["dimensions"]] == ["quality", "alignment"]
    assert [r["image"] for r in body["results"]] == ["a.png", "b.png"]
    expected = scorer.score([_png(0), _png(1)], "a red fox")
    assert [r["quality"] for r in body["results"]] == pytest.approx(expected.scores["quality"].tolist())


def test_bad_uploads_are_errors_in_their_record(client: TestClient) -> None:
    files = [
        ("images", ("ok.png", _png(2), "image/png")),
        ("images", ("junk.png", b"nope", "image/png")),
        ("images", ("huge.bmp", b"\0" * 30_000, "image/bmp")),
    ]
    response = client.post("/score", files=files, data={"prompts": ["a", "b", ""]})
    assert response.status_code == 200, response.text
    ok, junk, huge = response.json()["results"]
    assert ok["error"] == "" and ok["quality"] is not None
    assert "not an image" in junk["error"] and junk["quality"] is None
    assert "larger than 20000 bytes" in huge["error"]


def test_malformed_requests_are_refused(client: TestClient) -> None:
    one = [("images", ("a.png", _png(0), "image/png"))]
    assert client.post("/score", data={"prompt": "x"}).status_code == 422
    assert client.post("/score", files=one, data={"prompts": ["a", "b"]}).status_code == 422
    assert client.post("/score", files=one * 5, data={"prompt": "x"}).status_code == 413


def test_serve_command_is_registered(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agiqa.cli import app

    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0 and "/score" in result.output


def test_a_request_without_a_prompt_scores_the_prompt_free_dimensions(client: TestClient) -> None:
    response = client.post("/score", files=[("images", ("a.png", _png(3), "image/png"))])
    assert response.status_code == 200, response.text
    (record,) = response.json()["results"]
    assert record["error"] == "" and record["quality"] is not None and record["alignment"] is None
    assert record["warning"] == "alignment not scored: no prompt"
