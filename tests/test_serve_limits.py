"""The service under hostile input: bodies refused before they are read, images, prompt length and UTF-8 checked,
huge prompts not echoed, extreme images answered in bounded work. A real uvicorn server where the wire matters."""

from __future__ import annotations

import io
import json
import select
import socket
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from scoring_fixtures import write_tiny_model

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart", reason="the server extra needs python-multipart: pip install 'agiqa[serve]'")
from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from _server import serving  # noqa: E402
from agiqa.api import Scorer, load  # noqa: E402
from agiqa.serve import ServeOptions, create_app  # noqa: E402

LIMITS = ServeOptions(max_body_bytes=200_000, max_images=3, max_prompt_chars=50, echo_prompt_chars=20)


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory) -> Scorer:
    return load(str(write_tiny_model(tmp_path_factory.mktemp("tiny"))))


@pytest.fixture(scope="module")
def client(scorer: Scorer) -> TestClient:
    return TestClient(create_app(scorer, LIMITS))


def _png(width: int = 16, height: int = 16, seed: int = 0) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _files(n: int) -> list:
    return [("images", (f"{k}.png", _png(seed=k), "image/png")) for k in range(n)]


def _connect(url: str) -> socket.socket:
    parsed = urlparse(url)
    return socket.create_connection((parsed.hostname, parsed.port), timeout=10)


def _status(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 10:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body[: body.rindex(b"}") + 1])


def test_a_declared_large_body_is_refused_before_it_is_sent(scorer: Scorer) -> None:
    with serving(create_app(scorer, LIMITS)) as url, _connect(url) as sock:
        sock.sendall(
            b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 10000000000\r\n\r\n"
        )  # ten gigabytes announced, not a byte of them sent
        status, body = _status(sock)
    assert status == 413 and "10000000000 bytes is larger than the limit of 200000" in body["detail"]


def test_a_chunked_body_is_cut_off_at_the_limit(scorer: Scorer) -> None:
    part = b'--b\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\n\r\n'
    with serving(create_app(scorer, LIMITS)) as url, _connect(url) as sock:
        sock.sendall(
            b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + f"{len(part):x}\r\n".encode() + part + b"\r\n"
        )
        sent, chunk = 0, b"\0" * 65536
        while sent < 4_000_000 and not select.select([sock], [], [], 0.01)[0]:
            try:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        status, body = _status(sock)
    assert status == 413 and "larger than 200000 bytes" in body["detail"]
    assert sent < 1_000_000  # refused while streaming, long before the sender gave up


def test_too_many_images_is_a_413_naming_the_option(client: TestClient) -> None:
    response = client.post("/score", files=_files(4), data={"prompt": "x"})
    assert response.status_code == 413 and "more than 3 images" in response.json()["detail"]
    assert "--max-images" in response.json()["detail"]


def test_prompt_length_is_checked_per_field(client: TestClient) -> None:
    response = client.post("/score", files=_files(1), data={"prompt": "a" * 51})
    assert response.status_code == 422 and "prompt has 51 characters; at most 50" in response.json()["detail"]
    response = client.post("/score", files=_files(2), data={"prompts": ["ok", "é" * 51]})
    assert response.status_code == 422 and "prompts[1] has 51 characters" in response.json()["detail"]
    response = client.post("/score", files=_files(1), data={"prompt": "b" * 5000})  # past the parser's own cap
    assert response.status_code == 422 and "longer than 50 characters" in response.json()["detail"]
    assert client.post("/score", files=_files(1), data={"prompt": "é" * 50}).status_code == 200  # 100 bytes, 50 chars


def _raw_form(prompt: bytes) -> tuple[bytes, dict]:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
        + _png()
        + b'\r\n--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n'
        + prompt
        + b"\r\n--b--\r\n"
    )
    return body, {"Content-Type": "multipart/form-data; boundary=b"}


def test_invalid_utf8_is_a_422_not_latin1(client: TestClient) -> None:
    body, headers = _raw_form(b"caf\xe9 on a table")  # latin-1 bytes sent as if UTF-8
    response = client.post("/score", content=body, headers=headers)
    assert response.status_code == 422 and "'prompt' is not valid utf-8 text" in response.json()["detail"]
    body, headers = _raw_form("café on a table".encode())
    response = client.post("/score", content=body, headers=headers)
    assert response.status_code == 200 and response.json()["results"][0]["prompt"] == "café on a table"


def test_malformed_forms_are_422s(client: TestClient) -> None:
    assert client.post("/score", data={"prompt": "x"}).status_code == 422  # not multipart
    assert client.post("/score", data={"images": "x", "prompt": "x"}, files={"f": ("a", b"b")}).status_code == 422
    garbage = {"Content-Type": "multipart/form-data; boundary=b"}
    assert client.post("/score", content=b"--b\r\nnonsense\r\n\r\n", headers=garbage).status_code == 422
    no_boundary = {"Content-Type": "multipart/form-data"}
    assert client.post("/score", content=b"x", headers=no_boundary).status_code == 422


def test_the_echoed_prompt_is_capped(client: TestClient) -> None:
    response = client.post("/score", files=_files(3), data={"prompt": "z" * 50})
    assert response.status_code == 200
    assert [r["prompt"] for r in response.json()["results"]] == ["z" * 20 + "... (50 characters)"] * 3


def test_extreme_images_are_answered_with_bounded_work(client: TestClient) -> None:
    thin = io.BytesIO()
    Image.new("1", (12000, 1), 1).save(thin, format="PNG")  # the 119-byte bomb of the issue
    big = io.BytesIO()
    Image.new("1", (5000, 5000), 1).save(big, format="PNG")  # 25 Mpx: above the service's 16.8 Mpx default
    files = [("images", (name, buf.getvalue(), "image/png")) for name, buf in [("thin.png", thin), ("big.png", big)]]
    response = client.post("/score", files=files, data={"prompt": "a line"})
    assert response.status_code == 200
    thin_record, big_record = response.json()["results"]
    assert thin_record["error"] == "" and thin_record["quality"] is not None
    assert "above the limit of 16,777,216" in big_record["error"]


def test_serve_options_arrive_in_their_units(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from agiqa import api
    from agiqa.cli import app

    seen = {}
    monkeypatch.setattr(
        api,
        "run_server",
        lambda scorer, options, host, port, gallery_dir: seen.update(options=options, port=port, gallery=gallery_dir),
    )
    model = write_tiny_model(tmp_path / "tiny")
    args = ["serve", "--model", str(model), "--port", "9", "--max-body-mb", "2.5", "--timeout", "7"]
    args += ["--gallery-dir", str(tmp_path)]
    args += ["--max-images", "5", "--batch-wait-ms", "3", "--queue-size", "4", "--max-prompt-chars", "99"]
    args += ["-b", "8", "--max-pixels", "1000"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen["options"] == ServeOptions(
        max_body_bytes=int(2.5 * 2**20),
        max_images=5,
        max_prompt_chars=99,
        queue_size=4,
        timeout_s=7.0,
        batch_wait_ms=3.0,
        batch_size=8,
        max_pixels=1000,
    )
    assert seen["port"] == 9 and seen["gallery"] == tmp_path
