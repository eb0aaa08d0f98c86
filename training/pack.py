"""A compact copy of the labelled data, for a machine the raw sets cannot travel to.

A GPU lease takes at most 64 MiB with the working tree; the raw sets are about 205 MB (Massachusetts'
1500 px tiles alone 123 MB) and SpaceNet's need rasterio and shapely to read. A pack holds what
:meth:`training.data.Pair.load` returns, resolved once: the image as JPEG and the mask (1 road,
0 background, 255 no data) as PNG, one folder per set, so reading it needs only Pillow::

    python -m training.pack ../shared/data .gpu-data        # then --data .gpu-data

Keys (``set/id``) are the originals', so a split made on either copy names the same images. The images
are recompressed (JPEG ``quality`` 80 by default: 34 MiB for the 240 pairs, beside a 20 MB working
tree): a model trained on a pack is scored again on the raw data before it ships.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image

from training.data import PACK_INDEX, PACKED_MASK, find_pairs


def pack_pairs(folders: list[Path], out: Path, quality: int = 80) -> dict[str, int]:
    """Write every labelled pair under ``folders`` into ``out``; the number of pairs per set."""
    pairs = find_pairs(*folders)  # first: a wrong data folder fails before anything is written
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for pair in pairs:
        image, mask = pair.load()
        folder = out / pair.dataset
        folder.mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / f"{pair.id}.jpg", quality=quality)
        Image.fromarray(mask).save(folder / f"{pair.id}{PACKED_MASK}", optimize=True)
        counts[pair.dataset] = counts.get(pair.dataset, 0) + 1
    index = {"sources": [str(folder) for folder in folders], "quality": quality, "pairs": counts}
    (out / PACK_INDEX).write_text(json.dumps(index, indent=1) + "\n")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", type=Path, nargs="+", help="folders of labelled pairs")
    parser.add_argument("out", type=Path)
    parser.add_argument("--quality", type=int, default=80, help="JPEG quality of the images")
    args = parser.parse_args()
    counts = pack_pairs(args.data, args.out, args.quality)
    size = sum(path.stat().st_size for path in args.out.rglob("*") if path.is_file())
    print(f"{sum(counts.values())} pairs {counts} into {args.out}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
