"""The page's routes (`/`, `/page/*`, `POST /explain`, `/gallery/*`) and `agiqa report`, without a browser."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from scoring_fixtures import write_images, write_tiny_model
from test_reference import add_reference

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart", reason="the server extra needs python-multipart: pip install 'agiqa[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

from agiqa.api import Scorer, load  # noqa: E402
from agiqa.cli import app as cli  # noqa: E402
from agiqa.explain import level_of  # noqa: E402
from agiqa.serve import ServeOptions, create_app  # noqa: E402


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory) -> Scorer:
    folder = write_tiny_model(tmp_path_factory.mktemp("tiny"))
    add_reference(folder, write_images(tmp_path_factory.mktemp("ref"), 12))
    return load(str(folder))


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gallery")
    write_images(root / "run1" / "imgs", 3)
    pd.DataFrame(
        {
            "image": ["imgs/img_000.jpg", "imgs/img_001.jpg", "imgs/img_002.jpg", "../../etc/passwd", "/etc/hostname"],
            "prompt": ["a", "b", "c", "d", "e"],
            "seed": ["1", "2", "3", "4", "5"],
            "quality": ["0.2", "0.9", "", "0.5", "0.5"],
            "alignment": ["0.1", "-0.3", "", "0", "0"],
            "error": ["", "", "image: not an image", "", ""],
            "warning": ["", "", "", "", ""],
        }
    ).to_csv(root / "run1" / "scores.csv", index=False)
    outside = tmp_path_factory.mktemp("outside")
    write_images(outside, 1)
    (root / "run1" / "escape.jpg").symlink_to(outside / "img_000.jpg")
    pd.DataFrame({"image": ["escape.jpg"], "quality": ["1"]}).to_csv(root / "run1" / "links.csv", index=False)
    (root / ".hidden").mkdir()
    pd.DataFrame({"image": ["x"]}).to_csv(root / ".hidden" / "t.csv", index=False)
    return root


@pytest.fixture(scope="module")
def client(scorer: Scorer, gallery: Path) -> TestClient:
    options = ServeOptions(max_image_bytes=200_000, max_prompt_chars=1_000)
    return TestClient(create_app(scorer, options, gallery_dir=str(gallery)))


def _png(seed: int, size: int = 48) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_the_page_and_its_assets_are_served_offline(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="page/gallery.js"' in page.text and 'href="page/gallery.css"' in page.text
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)  # nothing from elsewhere
    js = client.get("/page/gallery.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert not re.search(r"https?://", js.text) and client.get("/page/gallery.css").status_code == 200
    assert client.get("/page/nope.js").status_code == 404
    model = client.get("/page/model").json()
    assert model["model"] == "test-tiny" and model["gallery"] is True
    assert [d["name"] for d in model["dimensions"]] == ["quality", "alignment"]
    assert all(d["reference"] for d in model["dimensions"])


def test_annotate_gives_the_level_words_and_percentiles(client: TestClient, scorer: Scorer) -> None:
    scores = scorer.score([_png(1), _png(2)], "a red fox", percentiles=True)
    records = [{k: v for k, v in r.items() if not k.endswith("_pct")} for r in scores.to_records()]
    body = client.post("/page/annotate", json={"records": records}).json()["records"]
    for spec in scorer.dimensions:
        for i in range(2):
            assert body[i][f"{spec.name}_level"] == level_of(scores.scores[spec.name][i], spec)
            assert body[i][f"{spec.name}_pct"] == pytest.approx(scores.percentiles[spec.name][i])
    empty = client.post("/page/annotate", json={"records": [{"quality": None}]}).json()["records"][0]
    assert empty["quality_level"] is None and empty["quality_pct"] is None


def test_explain_answers_the_structured_explanation(client: TestClient, scorer: Scorer) -> None:
    image = _png(3)
    response = client.post(
        "/explain", files={"image": ("fox.png", image, "image/png")}, data={"prompt": "a red fox, in the snow"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    expected = scorer.explain(image, "a red fox, in the snow")
    assert body["image"] == "fox.png"
    assert [d["score"] for d in body["dimensions"]] == pytest.approx([d.score for d in expected.dimensions])
    assert [p["phrase"] for p in body["phrases"]] == [p.phrase for p in expected.phrases]
    assert body["weakest_phrases"] == expected.weakest_phrases and body["worst_region"] == expected.worst_region
    prefix = "data:image/png;base64,"
    assert body["heatmap"].startswith(prefix)
    with Image.open(io.BytesIO(base64.b64decode(body["heatmap"][len(prefix) :]))) as heat:
        assert heat.format == "PNG" and heat.size[0] > 100


def test_explain_refuses_bad_input(client: TestClient) -> None:
    bad = client.post("/explain", files={"image": ("x.png", b"nope", "image/png")}, data={"prompt": "a"})
    assert bad.status_code == 422 and "not an image" in bad.json()["detail"]
    no_prompt = client.post("/explain", files={"image": ("x.png", _png(4), "image/png")})
    levels = {d["name"]: (d["level"], d["score"]) for d in no_prompt.json()["dimensions"]}
    assert no_prompt.status_code == 200 and levels["alignment"] == ("not scored", None)  # JSON null, not NaN
    assert levels["quality"][0] != "not scored" and isinstance(levels["quality"][1], float)
    huge = client.post("/explain", files={"image": ("x.bmp", b"\0" * 300_000, "image/bmp")}, data={"prompt": "a"})
    assert huge.status_code == 413
    long = client.post("/explain", files={"image": ("x.png", _png(4), "image/png")}, data={"prompt": "a" * 1_001})
    assert long.status_code == 422 and "--max-prompt-chars" in long.json()["detail"]
    assert client.post("/explain", data={"prompt": "a"}).status_code == 422


def test_gallery_folder_tables_and_thumbnails(client: TestClient, scorer: Scorer, gallery: Path) -> None:
    assert client.get("/gallery/tables").json() == {"tables": ["run1/links.csv", "run1/scores.csv"]}
    table = client.get("/gallery/table", params={"name": "run1/scores.csv"}).json()
    first, _, failed = table["records"][:3]
    assert first["row"] == 0 and first["extra"] == {"seed": "1"}
    quality = next(d for d in scorer.dimensions if d.name == "quality")
    assert first["quality"] == 0.2 and first["quality_level"] == level_of(0.2, quality)
    assert first["quality_pct"] == pytest.approx(scorer.reference.percentile("quality", [0.2])[0])
    assert failed["quality"] is None and failed["error"] == "image: not an image"
    thumb = client.get("/gallery/thumb", params={"table": "run1/scores.csv", "row": 1})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    full = client.get("/gallery/image", params={"table": "run1/scores.csv", "row": 1})
    assert full.content == (gallery / "run1" / "imgs" / "img_001.jpg").read_bytes()


@pytest.mark.parametrize(
    ("route", "params", "status"),
    [
        ("/gallery/table", {"name": "../outside.csv"}, 403),
        ("/gallery/table", {"name": "run1/../../x.csv"}, 403),
        ("/gallery/table", {"name": "/etc/passwd"}, 403),
        ("/gallery/table", {"name": "run1\\..\\..\\x.csv"}, 403),
        ("/gallery/table", {"name": "run1/missing.csv"}, 404),
        ("/gallery/table", {"name": "run1/imgs/img_000.jpg"}, 404),
        ("/gallery/thumb", {"table": "run1/scores.csv", "row": 3}, 403),  # image cell ../../etc/passwd
        ("/gallery/image", {"table": "run1/scores.csv", "row": 4}, 403),  # image cell /etc/hostname
        ("/gallery/image", {"table": "run1/links.csv", "row": 0}, 403),  # a symlink out of the folder
        ("/gallery/thumb", {"table": "run1/scores.csv", "row": 9}, 404),
        ("/gallery/image", {"table": "../../etc/passwd", "row": 0}, 403),
    ],
)
def test_nothing_outside_the_gallery_folder_is_read(client: TestClient, route: str, params: dict, status: int) -> None:
    response = client.get(route, params=params)
    assert response.status_code == status, response.text
    assert "root:" not in response.text


def test_explain_runs_on_the_scoring_worker_and_takes_a_place_in_its_queue(scorer: Scorer) -> None:
    app = create_app(scorer, ServeOptions(queue_size=1))
    queue, served, worker = app.state.queue, app.state.scorer, []  # the app's copy, with its pixel limit
    explain = served.explain

    def on_which_thread(*args, **kwargs):
        worker.append(threading.current_thread().name)
        return explain(*args, **kwargs)

    client = TestClient(app)
    form = {"files": {"image": ("x.png", _png(5), "image/png")}, "data": {"prompt": "a red fox"}}
    queue.reserve()  # the one place is taken: an explanation is refused as a score would be
    full = client.post("/explain", **form)
    assert full.status_code == 503 and int(full.headers["Retry-After"]) >= 1
    queue.release()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(served, "explain", on_which_thread)
        assert client.post("/explain", **form).status_code == 200
    assert worker == ["agiqa-scoring"] and queue.stats()["rejected"] == 1
    queue.close()


def test_no_gallery_routes_without_a_folder(scorer: Scorer) -> None:
    plain = TestClient(create_app(scorer))
    assert plain.get("/gallery/tables").status_code == 404
    assert plain.get("/page/model").json()["gallery"] is False


def test_report_is_self_contained(tmp_path: Path, scorer: Scorer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    images = write_images(tmp_path / "imgs", 3)
    result = scorer.score(images, "a cat </script><script>alert(1)</script>")
    table = result.to_pandas()
    table["image"] = [f"imgs/{p.name}" for p in images]
    table.loc[len(table)] = {**table.iloc[0].to_dict(), "image": "imgs/missing.jpg"}
    table.to_csv("scores.csv", index=False)
    runner = CliRunner()
    out = runner.invoke(cli, ["report", "scores.csv", "--out", "r.html", "--model", str(scorer_folder(scorer))])
    assert out.exit_code == 1 and "1 images could not be read" in out.output, out.output
    html = Path("r.html").read_text()
    assert html.count("<script") == 2 and "</script><script>alert" not in html  # the prompt cannot end the script
    assert not re.search(r"(src|href)=\"(https?:)?//", html) and "page/gallery.js" not in html
    data = json.loads(re.search(r'<script type="application/json" id="agiqa-data">(.*?)</script>', html, re.S)[1])
    assert data["model"]["model"] == "test-tiny" and len(data["items"]) == 4
    first = data["items"][0]
    assert first["thumbnail"].startswith("data:image/jpeg;base64,")
    assert first["quality_level"] == level_of(result.scores["quality"][0], scorer.dimensions[0])
    assert first["quality_pct"] == pytest.approx(scorer.reference.percentile("quality", result.scores["quality"])[0])
    assert data["items"][3]["thumbnail"] is None and "file not found" in data["items"][3]["error"]


def scorer_folder(scorer: Scorer) -> Path:
    return Path(scorer.model.card.source).parent
