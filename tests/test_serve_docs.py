"""``GET /docs`` works offline: a real server on 127.0.0.1 serves a self-contained page built from its schema."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from scoring_fixtures import write_tiny_model

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart", reason="the server extra needs python-multipart: pip install 'agiqa[serve]'")
uvicorn = pytest.importorskip("uvicorn")

from agiqa.api import load  # noqa: E402
from agiqa.serve import create_app  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = create_app(load(str(write_tiny_model(tmp_path_factory.mktemp("tiny")))))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get("content-type", ""), response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, "", ""


def test_docs_page_is_self_contained_and_describes_every_route(server: str, tmp_path: Path) -> None:
    status, kind, page = _get(f"{server}/docs")
    assert status == 200 and kind.startswith("text/html")
    for route in ("/score", "/health", "/models"):
        assert f"<code>{route}</code>" in page
    for field in ("images", "prompt", "prompts"):
        assert f"<code>{field}</code>" in page  # the form fields of POST /score, from the schema
    assert "array of file" in page and "One prompt for every image." in page
    # nothing to fetch from elsewhere: no script, no stylesheet or image from another host
    assert "<script" not in page.lower() and "http://" not in page and "https://" not in page
    assert "href='openapi.json'" in page and _get(f"{server}/openapi.json")[0] == 200
    assert _get(f"{server}/redoc")[0] == 404
