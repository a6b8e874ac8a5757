"""The service under load: a bounded queue (503 + Retry-After), a timeout, dropped requests of clients that left,
first come first served, concurrent requests batched with unchanged scores, ``/health`` answering while a batch is
scored, one log line per request and memory that does not grow. A real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
import tracemalloc
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
from PIL import Image

from scoring_fixtures import write_tiny_model

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart", reason="the server extra needs python-multipart: pip install 'agiqa[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

from _server import serving  # noqa: E402
from agiqa.api import Scorer, load  # noqa: E402
from agiqa.serve import ServeOptions, create_app  # noqa: E402


class GatedScorer(Scorer):
    """Records the prompts of every ``score`` call and, while ``gate`` is clear, holds the call (a long batch)."""

    def __init__(self, scorer: Scorer) -> None:
        super().__init__(scorer.model, scorer.max_pixels)
        self.calls: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()

    def score(self, images, prompts=None, batch_size: int = 16, workers: int = 0):
        self.calls.append(list(prompts))
        assert self.gate.wait(60), "the test never opened the gate"
        return super().score(images, prompts, batch_size, workers)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Scorer:
    return load(str(write_tiny_model(tmp_path_factory.mktemp("tiny"))))


@pytest.fixture()
def gated(tiny: Scorer) -> GatedScorer:
    return GatedScorer(tiny)


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _post(url: str, prompt: str, seed: int = 0, n: int = 1) -> httpx.Response:
    files = [("images", (f"{k}.png", _png(seed + k), "image/png")) for k in range(n)]
    return httpx.post(f"{url}/score", files=files, data={"prompt": prompt}, timeout=60)


def _health(url: str) -> dict:
    return httpx.get(f"{url}/health", timeout=5).json()["queue"]


def _until(check, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _busy(url: str, gated: GatedScorer, pool: ThreadPoolExecutor):
    """Close the gate and start request 'A': the worker is scoring it until the gate opens."""
    gated.gate.clear()
    first = pool.submit(_post, url, "A")
    _until(lambda: gated.calls == [["A"]], "the worker to take A")
    return first


def _queue_in_order(url: str, prompts: Sequence[str], pool: ThreadPoolExecutor) -> list:
    futures = []
    for k, prompt in enumerate(prompts):
        futures.append(pool.submit(_post, url, prompt, seed=10 * k))
        _until(lambda n=k + 1: _health(url)["queued"] == n, f"{prompt} to be queued")
    return futures


def test_a_full_queue_answers_503_with_retry_after_at_once(gated: GatedScorer) -> None:
    app = create_app(gated, ServeOptions(queue_size=1))
    with serving(app) as url, ThreadPoolExecutor(4) as pool:
        first = _busy(url, gated, pool)
        (second,) = _queue_in_order(url, ["B"], pool)
        start = time.monotonic()
        third = _post(url, "C")
        assert third.status_code == 503 and time.monotonic() - start < 5
        assert int(third.headers["Retry-After"]) >= 1 and "queue is full" in third.json()["detail"]
        gated.gate.set()
        assert first.result().status_code == second.result().status_code == 200
        assert _health(url)["rejected"] == 1 and gated.calls == [["A"], ["B"]]


def _raw_upload(url: str, body_bytes: int, chunk: int = 64 * 1024) -> tuple[bytes, bool]:
    """POST a multipart body of about ``body_bytes`` over a raw socket, in chunks with pauses (a slow client still
    sending when the server answers); returns what came back and whether the server then closed the connection."""
    host, port = urlparse(url).hostname, urlparse(url).port
    boundary = "agiqa-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nC\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    body = head + bytes(body_bytes) + f"\r\n--{boundary}--\r\n".encode()
    request = (
        f"POST /score HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(body)}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(request)
        for start in range(0, len(body), chunk):
            sock.sendall(body[start : start + chunk])
            time.sleep(0.005)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
            data = sock.recv(65536)
            assert data, f"the server closed the connection before its answer was complete: {answer!r}"
            answer += data
        sock.settimeout(5)
        closed = sock.recv(1) == b""
    return answer, closed


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


def test_a_full_queue_answers_a_client_still_uploading_and_closes_the_connection(gated: GatedScorer) -> None:
    """The 64-client benchmark lost one request to a read error: a 503 on a kept-alive connection sends the retry
    onto a socket the server's keep-alive timer may be closing. The 503 closes the connection, and it reaches a client
    that is still uploading (the rest of the body is read and dropped first: closing with unread data resets)."""
    app = create_app(gated, ServeOptions(queue_size=1))
    with serving(app) as url, ThreadPoolExecutor(4) as pool:
        first = _busy(url, gated, pool)
        (second,) = _queue_in_order(url, ["B"], pool)
        answer, closed = _raw_upload(url, 2 * 2**20)
        head = answer.split(b"\r\n\r\n", 1)[0].lower()
        assert head.startswith(b"http/1.1 503") and b"retry-after:" in head, answer[:300]
        assert b"connection: close" in head and closed, head
        assert _health(url)["queued"] == 1, "the refused upload must not take a place"
        gated.gate.set()
        assert first.result().status_code == second.result().status_code == 200
        assert gated.calls == [["A"], ["B"]]


def test_a_request_waiting_past_the_timeout_gets_503_and_is_never_scored(gated: GatedScorer) -> None:
    with serving(create_app(gated, ServeOptions(timeout_s=0.5))) as url, ThreadPoolExecutor(4) as pool:
        first = _busy(url, gated, pool)
        late = _post(url, "B")
        assert late.status_code == 503 and int(late.headers["Retry-After"]) >= 1
        assert "not scored within 0.5 s" in late.json()["detail"]
        gated.gate.set()
        assert first.result().status_code == 200
        assert _post(url, "C").status_code == 200
        assert gated.calls == [["A"], ["C"]] and _health(url)["timed_out"] == 1


def test_a_client_that_left_is_dropped_from_the_queue(gated: GatedScorer) -> None:
    with serving(create_app(gated)) as url, ThreadPoolExecutor(4) as pool:
        first = _busy(url, gated, pool)
        body = httpx.Request("POST", f"{url}/score", files=[("images", ("b.png", _png(1)))], data={"prompt": "B"})
        parsed = urlparse(url)
        with socket.create_connection((parsed.hostname, parsed.port)) as sock:
            head = f"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body.read())}\r\n"
            head += f"Content-Type: {body.headers['Content-Type']}\r\n\r\n"
            sock.sendall(head.encode() + body.read())
            _until(lambda: _health(url)["queued"] == 1, "B to be queued")
        _until(lambda: _health(url)["dropped"] == 1, "the server to notice B's client left")
        assert _health(url)["queued"] == 0
        gated.gate.set()
        assert first.result().status_code == 200 and _post(url, "C").status_code == 200
        assert gated.calls == [["A"], ["C"]]


def test_requests_are_served_in_order_and_batched_with_unchanged_scores(gated: GatedScorer, tiny: Scorer) -> None:
    with serving(create_app(gated, ServeOptions(batch_size=2))) as url, ThreadPoolExecutor(6) as pool:
        first = _busy(url, gated, pool)
        later = _queue_in_order(url, ["B", "C", "D", "E"], pool)
        gated.gate.set()
        responses = [f.result() for f in [first, *later]]
    assert [r.status_code for r in responses] == [200] * 5
    assert gated.calls == [["A"], ["B", "C"], ["D", "E"]]  # first come first served, two images per model call
    for k, (prompt, response) in enumerate(zip("BCDE", responses[1:], strict=True)):
        alone = tiny.score([_png(10 * k)], prompt)
        record = response.json()["results"][0]
        assert record["prompt"] == prompt
        assert record["quality"] == pytest.approx(alone.scores["quality"][0], rel=1e-6, abs=1e-6)
        assert record["alignment"] == pytest.approx(alone.scores["alignment"][0], rel=1e-6, abs=1e-6)


def test_a_request_larger_than_a_batch_is_scored_whole(gated: GatedScorer) -> None:
    with serving(create_app(gated, ServeOptions(batch_size=2))) as url:
        response = _post(url, "many", n=5)
    assert response.status_code == 200 and len(response.json()["results"]) == 5
    assert gated.calls == [["many"] * 5]


def test_health_answers_while_a_batch_is_scored(gated: GatedScorer) -> None:
    with serving(create_app(gated)) as url, ThreadPoolExecutor(2) as pool:
        first = _busy(url, gated, pool)
        start = time.monotonic()
        queue = _health(url)
        elapsed = time.monotonic() - start
        gated.gate.set()
        assert first.result().status_code == 200
    assert queue["scoring"] == 1 and elapsed < 2.0


def test_one_log_line_per_request(tiny: Scorer, caplog: pytest.LogCaptureFixture) -> None:
    client = TestClient(create_app(tiny))
    files = [("images", (f"{k}.png", _png(k), "image/png")) for k in range(2)]
    with caplog.at_level(logging.INFO, logger="agiqa.serve"):
        client.post("/score", files=files, data={"prompt": "a fox"})
        client.post("/score", data={"prompt": "no images"})
        client.get("/health")
    lines = [r.getMessage() for r in caplog.records if r.name == "agiqa.serve"]
    assert len(lines) == 3
    assert " POST /score 200 images=2 wait=" in lines[0] and lines[0].endswith("s")
    assert " POST /score 422 " in lines[1] and " GET /health 200 " in lines[2]


def test_memory_does_not_grow_with_requests_served(tiny: Scorer) -> None:
    client = TestClient(create_app(tiny))
    files = [("images", ("a.png", _png(0), "image/png"))]

    def burst(n: int) -> None:
        for k in range(n):
            assert client.post("/score", files=files, data={"prompt": f"prompt {k}"}).status_code == 200

    burst(30)  # warm-up: caches of FastAPI, pydantic, the tokenizer-free tiny model
    tracemalloc.start()
    try:
        burst(50)
        before = tracemalloc.take_snapshot()
        burst(200)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert growth < 200_000, f"{growth} bytes more after 200 requests"
    assert client.get("/health").json()["queue"]["served"] == 280
