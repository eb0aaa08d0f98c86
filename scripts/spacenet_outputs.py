"""Run one job on a scene the way the worker does, and print the SHA-256 of every output it publishes.

For checking that a refactor changes no output byte: run it before and after and diff the two lists.
The job goes through the job store and the worker's pipeline with the default model and no options, as
an upload with no form fields would; only the job's id and timestamps differ between runs, and no
output holds them.

    python scripts/spacenet_outputs.py [SCENE]
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

from roadnet.jobs import JobStore
from roadnet.settings import get_settings
from worker.runner.pipeline import run_job

DEFAULT_SCENE = (
    Path(__file__).resolve().parents[2] / "shared/data/spacenet/pairs/RGB-PanSharpen_AOI_2_Vegas_img0.tif"
)


def main(scene: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        store = JobStore(Path(tmp))
        upload = store.new_upload_path()
        shutil.copyfile(scene, upload)
        record = store.create(upload, owner=None, filename=scene.name, options={}, scene={})
        run_job(record.id, store=store, model_path=get_settings().model_path, worker="spacenet-outputs")
        done = store.get(record.id)
        if done.status != "successful":
            print(f"job {done.status}: {done.message}", file=sys.stderr)
            return 1
        results = store.folder(record.id) / "results"
        for path in sorted(results.iterdir()):
            print(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}")
        print(f"summary {sorted(done.summary.items())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SCENE))
