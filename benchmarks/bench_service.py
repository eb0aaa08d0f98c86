"""The service under load: status polling while a job runs, and a 1 GB upload.

Starts ``roadnet serve`` (API and embedded worker) on a free loopback port with a fresh data directory,
then measures, side by side in one run:

1. Status polling: ``GET /jobs/{id}`` from a bounded asyncio client (``--connections`` keep-alive
   connections, raw HTTP/1.1 so the client costs little next to the server) for ``--seconds``, first
   with the worker idle, then while a job runs (the SpaceNet scene at stride 16). Requests/s and latency
   percentiles; the ratio loaded / idle.
2. Upload: a generated ~1 GB GeoTIFF streamed to ``POST /jobs`` (declared Content-Length), then the job
   is cancelled. Throughput, and the growth of the service process's peak RSS during the upload (the
   kernel's high-water mark, reset just before via /proc/PID/clear_refs).

Targets (issue 7): at least 1 000 status requests/s with p99 under 50 ms; upload memory growth under
50 MB. Run: ``.venv/bin/python benchmarks/bench_service.py [--model M.onnx]`` (about two minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import rasterio
from rasterio.transform import from_origin

REPO = Path(__file__).resolve().parents[1]
SCENE = REPO.parent / "shared" / "data" / "spacenet" / "pairs" / "RGB-PanSharpen_img1447.tif"
#: 3 bands x 18 500 x 18 500 uint8, uncompressed: 1.03 GB.
UPLOAD_SIDE = 18_500


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


async def _poll(
    host: str, port: int, path: str, until: float, latencies: list[float], headers: str = ""
) -> None:
    """One keep-alive connection sending GET ``path`` (with ``headers``, CRLF-ended lines) back to back
    until ``until``."""
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n".encode()
    while time.perf_counter() < until:
        start = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")
        latencies.append(time.perf_counter() - start)
    writer.close()


def poll_status(url: str, job_id: str, connections: int, seconds: float) -> dict[str, float]:
    """Requests/s and latency percentiles of ``connections`` clients polling the job's status."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []

    async def run() -> None:
        until = time.perf_counter() + seconds
        await asyncio.gather(
            *(_poll(host, int(port), f"/jobs/{job_id}", until, latencies) for _ in range(connections))
        )

    started = time.perf_counter()
    asyncio.run(run())
    elapsed = time.perf_counter() - started
    ms = sorted(x * 1000 for x in latencies)
    return {
        "requests": len(ms),
        "requests_per_s": round(len(ms) / elapsed, 1),
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 2),
        "max_ms": round(ms[-1], 2),
    }


def write_big_geotiff(path: Path, side: int) -> Path:
    """An uncompressed 3-band uint8 GeoTIFF, written in strips (a gradient, so it is not all zeros)."""
    profile = {"driver": "GTiff", "width": side, "height": side, "count": 3, "dtype": "uint8",
               "crs": "EPSG:32633", "transform": from_origin(500_000, 5_000_000, 0.5, 0.5),
               "tiled": True, "blockxsize": 512, "blockysize": 512, "BIGTIFF": "YES"}  # fmt: skip
    row = (np.arange(side, dtype=np.uint32) % 256).astype(np.uint8)
    with rasterio.open(path, "w", **profile) as dst:
        for top in range(0, side, 512):
            rows = min(512, side - top)
            block = np.broadcast_to(row, (3, rows, side))
            dst.write(block, window=rasterio.windows.Window(0, top, side, rows))
    return path


def multipart(path: Path, boundary: str) -> tuple[int, Iterator[bytes]]:
    """The multipart body of one file field, streamed from disk: its length and its chunks."""
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: image/tiff\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def chunks() -> Iterator[bytes]:
        yield head
        with path.open("rb") as f:
            while chunk := f.read(1024 * 1024):
                yield chunk
        yield tail

    return len(head) + path.stat().st_size + len(tail), chunks()


def upload(url: str, path: Path, service_pid: int) -> dict[str, Any]:
    """Stream ``path`` to POST /jobs; throughput and the service's peak RSS growth."""
    Path(f"/proc/{service_pid}/clear_refs").write_text("5")  # reset the peak RSS to the current RSS
    before = memory_kb(service_pid, "VmRSS")
    length, body = multipart(path, "roadnet-bench-boundary")
    started = time.perf_counter()
    response = httpx.post(
        f"{url}/jobs",
        content=body,
        headers={"content-type": "multipart/form-data; boundary=roadnet-bench-boundary",
                 "content-length": str(length)},
        timeout=600,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    peak = memory_kb(service_pid, "VmHWM")
    if response.status_code != 201:
        raise RuntimeError(f"upload answered {response.status_code}: {response.text}")
    httpx.delete(f"{url}/jobs/{response.json()['jobID']}", timeout=30)
    return {
        "bytes": length,
        "seconds": round(elapsed, 2),
        "mb_per_s": round(length / elapsed / 1e6, 1),
        "rss_before_mb": round(before / 1024, 1),
        "peak_rss_growth_mb": round((peak - before) / 1024, 1),
    }


def submit(url: str) -> str:
    """A job on the SpaceNet scene at stride 16 (676 windows): one that runs a while."""
    with SCENE.open("rb") as f:
        job = httpx.post(f"{url}/jobs", files={"file": (SCENE.name, f)}, data={"stride": "16"}, timeout=60)
    return str(job.json()["jobID"])


def tiny_model(tmp: Path) -> Path:
    from models import create_model
    from roadnet.model_metadata import ModelMetadata
    from training.export import export_onnx

    meta = ModelMetadata(arch="risnet", mean=[100.0] * 3, std=[50.0] * 3, model_kwargs={"width": 0.0625})
    return export_onnx(create_model("risnet", width=0.0625).eval(), meta, tmp / "tiny.onnx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", type=Path, help="ONNX model (default: the shipped one, else a tiny RISNet)"
    )
    parser.add_argument("--connections", type=int, default=16, help="concurrent polling connections")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each polling phase")
    parser.add_argument("--upload-side", type=int, default=UPLOAD_SIDE, help="side of the uploaded scene")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "bench_service.json")
    args = parser.parse_args()

    from roadnet.model_files import default_model_path

    tmp = Path(tempfile.mkdtemp(prefix="bench_service_"))
    model = args.model or default_model_path()
    if not model.is_file():
        model = tiny_model(tmp)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "ROADNET_DATA_DIR": str(tmp / "data"), "ROADNET_MODEL_PATH": str(model),
           "ROADNET_LOG_LEVEL": "WARNING"}  # fmt: skip
    roadnet = str(Path(sys.executable).with_name("roadnet"))
    log = (tmp / "serve.log").open("wb")
    service = subprocess.Popen([roadnet, "serve", "--port", str(port)], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start; see {tmp / 'serve.log'}")
            time.sleep(0.2)

        with SCENE.open("rb") as f:
            job = httpx.post(
                f"{url}/jobs", files={"file": (SCENE.name, f)}, data={"stride": "16"}, timeout=60
            )
        job_id = job.json()["jobID"]
        httpx.delete(f"{url}/jobs/{job_id}", timeout=10)  # a status document to poll, no job running yet
        time.sleep(2)
        idle = poll_status(url, job_id, args.connections, args.seconds)
        print(f"status polling, worker idle:    {idle}")

        with SCENE.open("rb") as f:
            job = httpx.post(
                f"{url}/jobs", files={"file": (SCENE.name, f)}, data={"stride": "16"}, timeout=60
            )
        job_id = job.json()["jobID"]
        while httpx.get(f"{url}/jobs/{job_id}", timeout=10).json()["status"] == "accepted":
            time.sleep(0.1)
        loaded = poll_status(url, job_id, args.connections, args.seconds)
        still = httpx.get(f"{url}/jobs/{job_id}", timeout=10).json()
        print(
            f"status polling, job running:    {loaded} (job then {still['status']} at {still['progress']}%)"
        )
        httpx.delete(f"{url}/jobs/{job_id}", timeout=10)

        big = write_big_geotiff(tmp / "big.tif", args.upload_side)
        uploaded = upload(url, big, service.pid)
        big.unlink()
        print(f"upload of {uploaded['bytes'] / 1e9:.2f} GB: {uploaded}")
    finally:
        service.terminate()
        service.wait(timeout=60)
    report = {
        # Other processes' load (1-minute average) at the end: the machine may be shared.
        "machine": {"cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)},
        "model": model.name,
        "connections": args.connections,
        "status_idle": idle,
        "status_while_job_runs": loaded,
        "ratio_requests_per_s_loaded_over_idle": round(loaded["requests_per_s"] / idle["requests_per_s"], 2),
        "upload": uploaded,
        "targets": {
            "status_1000_rps": loaded["requests_per_s"] >= 1000,
            "status_p99_under_50ms": loaded["p99_ms"] < 50,
            "upload_growth_under_50mb": uploaded["peak_rss_growth_mb"] < 50,
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["targets"]))
    print(f"saved {args.json}")


if __name__ == "__main__":
    main()
