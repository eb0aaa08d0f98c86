"""Each worker's measured speed, so that the service refuses a scene no worker could finish in time.

A job's cost is the pixels its windows put through the network (windows x window x window): the time
of the whole job (inference, vectorisation, previews) per such pixel is what its worker records in
``<data_dir>/speeds/<hostname>.json`` when the job succeeds. The service estimates a new scene's time
at the slowest live worker's speed (any of them may take the job) and refuses it when the estimate
passes the job time limit. A small job's fixed costs make its worker look slower than it is, which errs
on the side of refusing; until a live worker has finished a job, only ``ROADNET_MAX_SCENE_PIXELS``
bounds a scene.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

from roadnet.window_grid import scene_windows

SPEEDS = "speeds"


def network_pixels(height: int, width: int, window: int, stride: int) -> int:
    """The pixels a ``height`` x ``width`` scene puts through the network at ``window`` and ``stride``."""
    return scene_windows(height, width, window, stride) * window * window


def _speed_path(data_dir: Path, hostname: str) -> Path:
    return Path(data_dir) / SPEEDS / (re.sub(r"[^A-Za-z0-9_.@-]", "_", hostname) + ".json")


def record_speed(data_dir: Path, hostname: str, pixels: int, seconds: float) -> None:
    """Record that worker ``hostname`` ran a job of ``pixels`` network pixels in ``seconds``."""
    if pixels <= 0 or seconds <= 0:
        return
    path = _speed_path(data_dir, hostname)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    tmp.write_text(json.dumps({"hostname": hostname, "pixels_per_s": pixels / seconds}))
    os.replace(tmp, path)  # readers see the old speed or the new one, never half of one


def slowest_speed(data_dir: Path, hostnames: Iterable[str]) -> float | None:
    """The lowest network pixels per second recorded by ``hostnames``; None when none has one."""
    speeds = []
    for hostname in hostnames:
        try:
            speeds.append(float(json.loads(_speed_path(data_dir, hostname).read_text())["pixels_per_s"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # no job finished yet, or a file being replaced on a disk that failed
    return min(speeds, default=None)
