"""Listing cost with many records: ``GET /jobs`` and status polls on a data directory of ``--records``
jobs (10 000 by default) owned by 100 other keys, the lister's own 20 among them.

Starts ``roadnet serve --no-worker`` (listing needs no worker) with API keys on a data directory whose
records were written beforehand through the job store, then measures side by side in one run, each for
``--seconds``: status polls alone; listings alone; status polls and listings at once (half the
connections each). Requests/s and p99; the ratio of polls while listing over polls alone.

    .venv/bin/python benchmarks/bench_listing.py --records 10000 --data-dir /tmp/listing
    PYTHONPATH=../roadnet-before .venv/bin/python benchmarks/bench_listing.py --data-dir /tmp/listing \
        --json benchmarks/results/bench_listing_before.json     # the same records, an older checkout
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from bench_service import _poll, free_port

from roadnet.jobs import JobStore
from service.api.deps import key_hash

REPO = Path(__file__).resolve().parents[1]
KEY = "lister"
OTHER_KEYS = 100
OWN_JOBS = 20


def fill_store(data_dir: Path, records: int) -> str:
    """``records`` accepted jobs, ``OWN_JOBS`` of them the lister's, unless ``data_dir`` has jobs already;
    the id of one of the lister's."""
    store = JobStore(data_dir)
    owners = [key_hash(f"key-{i}") for i in range(OTHER_KEYS)]
    if not any(store.root.iterdir()):
        for i in range(records):
            scene = store.new_upload_path()
            scene.write_bytes(b"")
            owner = key_hash(KEY) if i % (records // OWN_JOBS) == 0 else owners[i % OTHER_KEYS]
            store.create(scene, owner=owner, filename="s.tif", options={}, scene={})
    return store.page(key_hash(KEY), limit=1)[0][0].id


def load(url: str, paths: dict[str, tuple[str, int]], seconds: float) -> dict[str, dict[str, float]]:
    """For each name: ``connections`` clients GETting ``path`` back to back for ``seconds``, all at once."""
    host, port = url.removeprefix("http://").split(":")
    latencies: dict[str, list[float]] = {name: [] for name in paths}

    async def run() -> None:
        until = time.perf_counter() + seconds
        await asyncio.gather(
            *(
                _poll(host, int(port), path, until, latencies[name], headers=f"X-API-Key: {KEY}\r\n")
                for name, (path, connections) in paths.items()
                for _ in range(connections)
            )
        )

    started = time.perf_counter()
    asyncio.run(run())
    elapsed = time.perf_counter() - started
    report = {}
    for name, values in latencies.items():
        ms = sorted(x * 1000 for x in values)
        report[name] = {
            "requests_per_s": round(len(ms) / elapsed, 1),
            "p50_ms": round(statistics.median(ms), 2),
            "p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 2),
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--data-dir", type=Path, help="reuse this data directory (filled if empty)")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "bench_listing.json")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_listing_"))
    data_dir = args.data_dir or tmp / "data"
    started = time.monotonic()
    job_id = fill_store(data_dir, args.records)
    print(f"{args.records} records ready in {time.monotonic() - started:.0f} s")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "ROADNET_DATA_DIR": str(data_dir), "ROADNET_API_KEYS": KEY,
           "ROADNET_LOG_LEVEL": "WARNING"}  # fmt: skip
    roadnet = str(Path(sys.executable).with_name("roadnet"))
    with (tmp / "serve.log").open("wb") as log:
        service = subprocess.Popen([roadnet, "serve", "--no-worker", "--port", str(port)], env=env,
                                   stdout=log, stderr=log)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the service did not start; see {tmp / 'serve.log'}") from None
                time.sleep(0.2)
        status, listing, half = f"/jobs/{job_id}", "/jobs?limit=20", args.connections // 2
        listing_page = httpx.get(f"{url}{listing}", headers={"X-API-Key": KEY}, timeout=30).json()
        assert listing_page["numberMatched"] == OWN_JOBS, listing_page["numberMatched"]
        polls = load(url, {"status": (status, args.connections)}, args.seconds)["status"]
        print(f"status polls alone:        {polls}")
        lists = load(url, {"listing": (listing, args.connections)}, args.seconds)["listing"]
        print(f"listings alone:            {lists}")
        both = load(url, {"status": (status, half), "listing": (listing, half)}, args.seconds)
        print(f"polls and listings at once: {both}")
    finally:
        service.terminate()
        service.wait(timeout=60)
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)},
        "records": args.records,
        "connections": args.connections,
        "status_alone": polls,
        "listing_alone": lists,
        "at_once": both,
        "ratio_polls_while_listing_over_alone_per_connection": round(
            both["status"]["requests_per_s"] / half / (polls["requests_per_s"] / args.connections), 2
        ),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
