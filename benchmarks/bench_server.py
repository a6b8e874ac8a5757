"""The HTTP service under load and hostile input, measured on a real ``agiqa serve`` on 127.0.0.1.

Usage (from the repository root)::

    python benchmarks/bench_server.py            # levels 1/8/32/64 clients, 2,000-request memory run, hostile run
    python benchmarks/bench_server.py --quick    # small counts, to check the script (figures meaningless)

Starts ``agiqa serve`` (default model, default limits) on a free loopback port, then:

1. **Levels**: for 1, 8, 32 and 64 concurrent clients, ``--requests`` requests of ``--images`` real AGIQA-3K images
   each (one prompt per request). A 503 is retried after its ``Retry-After`` (counted, not a failure); a failure is
   any other answer, or an error. Requests/s, images/s, p50/p99 latency (retries included) and the server's RSS
   before and after each level.
2. **Memory**: ``--memory-requests`` (2,000) one-image requests from 8 clients; RSS before, after and peak.
3. **Hostile**: a declared 10 GB upload, a chunked upload past the limit, 12000x1 and 40000x1 PNGs, a 9400x9400
   PNG, 16 PNGs of 4096x4096 (just under the pixel limit), a 1 MB prompt, invalid UTF-8, a malformed form, too
   many images: status, time and RSS after each.

Everything is bounded: request counts, a client timeout, and ``--max-minutes`` for the whole run (levels not
reached are marked). The server is stopped at the end. Writes ``benchmarks/results/server_load.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import select
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _procs import SHARED, RssSampler, agiqa, conditions, context, rss_mb, stop, wait_for, write_results
from PIL import Image

PROMPT = "a photo of a red apple on a wooden table"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _images(n: int) -> list[bytes]:
    folder = SHARED / "agiqa3k" / "images"
    paths = sorted(folder.glob("*.jpg"))[:n] if folder.is_dir() else []
    if not paths:
        paths = sorted((Path(__file__).resolve().parents[1] / "examples" / "images").glob("*.jpg"))
    return [p.read_bytes() for p in paths]


async def _one(client: httpx.AsyncClient, url: str, images: list[bytes], prompt: str) -> dict[str, Any]:
    files = [("images", (f"{k}.jpg", data, "image/jpeg")) for k, data in enumerate(images)]
    start, retries = time.perf_counter(), 0
    while True:
        try:
            response = await client.post(f"{url}/score", files=files, data={"prompt": prompt})
        except httpx.HTTPError as err:
            return {"ok": False, "why": type(err).__name__, "seconds": time.perf_counter() - start, "retries": retries}
        if response.status_code == 503 and retries < 50:
            retries += 1
            await asyncio.sleep(min(float(response.headers.get("Retry-After", 1)), 10.0))
            continue
        ok = response.status_code == 200
        return {
            "ok": ok,
            "why": "" if ok else str(response.status_code),
            "seconds": time.perf_counter() - start,
            "retries": retries,
        }


async def _level(url: str, clients: int, requests: int, per_request: int, pool: list[bytes]) -> dict[str, Any]:
    queue = list(range(requests))
    results: list[dict[str, Any]] = []

    async def client_loop(client: httpx.AsyncClient) -> None:
        while queue:
            k = queue.pop()
            images = [pool[(k * per_request + j) % len(pool)] for j in range(per_request)]
            results.append(await _one(client, url, images, f"{PROMPT} {k % 7}"))

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        seconds = time.perf_counter() - start
    latencies = sorted(r["seconds"] for r in results)
    return {
        "clients": clients,
        "requests": requests,
        "images_per_request": per_request,
        "seconds": round(seconds, 2),
        "requests_per_s": round(requests / seconds, 3),
        "images_per_s": round(requests * per_request / seconds, 3),
        "p50_s": round(statistics.median(latencies), 3),
        "p99_s": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 3),
        "failed": sum(not r["ok"] for r in results),
        "failures": sorted({r["why"] for r in results if not r["ok"]}),
        "retried_503": sum(r["retries"] for r in results),
    }


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("1", (width, height), 1).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _raw(port: int, head: bytes, body_chunks: int = 0) -> int:
    """Send ``head`` (and a file part of up to ``body_chunks`` chunks of 64 KiB) on a raw socket; the status code."""
    part = b'--b\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\n\r\n'
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head + (f"{len(part):x}\r\n".encode() + part + b"\r\n" if body_chunks else b""))
        for _ in range(body_chunks):
            if select.select([sock], [], [], 0)[0]:  # the server has answered
                break
            try:
                sock.sendall(b"10000\r\n" + b"\0" * 65536 + b"\r\n")
            except OSError:
                break
        data = sock.recv(100)
    return int(data.split()[1]) if data else 0


def _hostile(url: str, port: int, pid: int) -> list[dict[str, Any]]:
    form = "multipart/form-data; boundary=b"
    cases: list[tuple[str, Any]] = [
        (
            "declared 10 GB upload",
            lambda: _raw(
                port,
                f"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: {form}\r\n"
                "Content-Length: 10000000000\r\n\r\n".encode(),
            ),
        ),
        (
            "chunked upload past the limit",
            lambda: _raw(
                port,
                f"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: {form}"
                "\r\nTransfer-Encoding: chunked\r\n\r\n".encode(),
                2000,
            ),
        ),
        ("12000x1 PNG", lambda: _post(url, [_png(12000, 1)])),
        ("40000x1 PNG", lambda: _post(url, [_png(40000, 1)])),
        ("9400x9400 PNG (above the pixel limit)", lambda: _post(url, [_png(9400, 9400)])),
        ("16 PNGs of 4096x4096 (under the limit)", lambda: _post(url, [_png(4096, 4096)] * 16)),
        ("1 MB prompt", lambda: _post(url, [_png(64, 64)], "x" * 1_000_000)),
        ("invalid UTF-8 prompt", lambda: _post(url, [_png(64, 64)], b"caf\xe9")),
        (
            "malformed multipart",
            lambda: (
                httpx.post(
                    f"{url}/score", content=b"--b\r\nnonsense", headers={"Content-Type": form}, timeout=60
                ).status_code
            ),
        ),
        ("65 images", lambda: _post(url, [_png(8, 8)] * 65)),
    ]
    out = []
    for name, send in cases:
        start = time.perf_counter()
        try:
            status = send()
        except httpx.HTTPError as err:
            status = type(err).__name__
        out.append(
            {
                "case": name,
                "status": status,
                "seconds": round(time.perf_counter() - start, 2),
                "rss_after_mb": round(rss_mb(pid), 1),
            }
        )
    return out


def _post(url: str, images: list[bytes], prompt: str | bytes = PROMPT) -> int:
    files = [("images", (f"{k}.png", data, "image/png")) for k, data in enumerate(images)]
    return httpx.post(f"{url}/score", files=files, data={"prompt": prompt}, timeout=300).status_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts: checks the script, not the figures")
    parser.add_argument("--model", default=None, help="model to serve (default: agiqa-lite)")
    parser.add_argument("--levels", default="1,8,32,64", help="concurrent clients per level")
    parser.add_argument("--requests", type=int, default=256, help="requests per level")
    parser.add_argument("--images", type=int, default=1, help="images per request in the levels")
    parser.add_argument("--memory-requests", type=int, default=2000, help="requests of the memory run (0: none)")
    parser.add_argument("--no-hostile", action="store_true", help="leave out the hostile requests")
    parser.add_argument("--name", default="server_load", help="results file name under benchmarks/results/")
    parser.add_argument("--max-minutes", type=float, default=90, help="stop starting phases after this long")
    parser.add_argument("--serve-args", default="", help="extra `agiqa serve` options, e.g. '--batch-size 8'")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.memory_requests = 16, 60
    levels = [int(x) for x in args.levels.split(",")]
    port, started = _free_port(), time.monotonic()
    url = f"http://127.0.0.1:{port}"
    command = ["serve", "--host", "127.0.0.1", "--port", port, *args.serve_args.split()]
    command += ["--model", args.model] if args.model else []
    # the server logs a line per request: to a file, since a pipe nobody reads fills up and blocks the server
    log = Path(tempfile.mkstemp(prefix="agiqa-serve-", suffix=".log")[1])
    with log.open("w") as sink:
        server = agiqa(*command, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=sink)
    result: dict[str, Any] = {"context": context(), "serve_command": ["agiqa", *map(str, command)], "levels": []}
    try:
        wait_for(lambda: _alive(url, server, log), 300, "the server to start")
        pool = _images(64)
        result["rss_start_mb"] = round(rss_mb(server.pid), 1)
        for clients in levels:
            if time.monotonic() - started > 60 * args.max_minutes:
                result["levels"].append({"clients": clients, "skipped": "--max-minutes reached"})
                continue
            before = rss_mb(server.pid)
            level = asyncio.run(_level(url, clients, max(args.requests, clients), args.images, pool))
            level.update(rss_before_mb=round(before, 1), rss_after_mb=round(rss_mb(server.pid), 1))
            result["levels"].append(level)
            print(level, flush=True)
        if args.memory_requests:
            result["memory"] = _memory_run(url, server.pid, args.memory_requests, pool)
            print(result["memory"], flush=True)
        if not args.no_hostile:
            result["hostile"] = _hostile(url, port, server.pid)
        result["health"] = httpx.get(f"{url}/health", timeout=10).json()["queue"]
    finally:
        stop(server)
        result["server_log_lines"] = sum(1 for _ in log.open())
        log.unlink()
    result["quick"] = args.quick
    paths = write_results(args.name, result, _markdown)
    print("wrote", *paths)


def _memory_run(url: str, pid: int, requests: int, pool: list[bytes]) -> dict[str, Any]:
    before = rss_mb(pid)
    with RssSampler(pid) as sampler:
        memory = asyncio.run(_level(url, 8, requests, 1, pool))
    memory.update(rss_before_mb=round(before, 1), rss_after_mb=round(rss_mb(pid), 1))
    memory["rss_peak_mb"] = round(sampler.peak, 1)
    memory["rss_growth_mb"] = round(memory["rss_after_mb"] - memory["rss_before_mb"], 1)
    return memory


def _alive(url: str, server: subprocess.Popen, log: Path) -> bool:
    if server.poll() is not None:
        raise RuntimeError(f"agiqa serve exited: {log.read_text()[-2000:]}")
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _markdown(r: dict[str, Any]) -> str:
    lines = [
        "# `agiqa serve` under load (loopback)",
        "",
        conditions(r),
        f"Server: `{' '.join(r['serve_command'])}`; RSS after start {r.get('rss_start_mb')} MiB.",
        "",
        "| clients | requests | img/req | req/s | img/s | p50 s | p99 s | failed | 503 retried | RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for lv in r["levels"]:
        if "skipped" in lv:
            lines.append(f"| {lv['clients']} | {lv['skipped']} |||||||||")
            continue
        lines.append(
            f"| {lv['clients']} | {lv['requests']} | {lv['images_per_request']} | {lv['requests_per_s']} | "
            f"{lv['images_per_s']} | {lv['p50_s']} | {lv['p99_s']} | {lv['failed']} | {lv['retried_503']} | "
            f"{lv['rss_before_mb']} → {lv['rss_after_mb']} |"
        )
    m = r.get("memory")
    if m:
        lines += [
            "",
            f"Memory run: {m['requests']} one-image requests from 8 clients: RSS {m['rss_before_mb']} → "
            f"{m['rss_after_mb']} MiB (growth {m['rss_growth_mb']} MiB, peak {m['rss_peak_mb']} MiB); "
            f"{m['failed']} failed, {m['retried_503']} retries after 503; {m['requests_per_s']} req/s.",
        ]
    if r.get("hostile"):
        lines += ["", "| hostile request | status | seconds | RSS after MiB |", "|---|---|---|---|"]
        lines += [f"| {h['case']} | {h['status']} | {h['seconds']} | {h['rss_after_mb']} |" for h in r["hostile"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
