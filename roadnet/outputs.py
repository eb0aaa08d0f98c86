"""What a successful job publishes: each output's name, file name in ``results/``, media type and title.

The worker writes these files and the service serves them; both take the names from here. The mask
preview's road colour is here too: the worker paints it and the map's mask tiles use it, so the two
look alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

#: The mask preview's road pixels (RGBA): the web page's road colour, opaque.
MASK_COLOUR = (255, 45, 149, 255)


@dataclass(frozen=True)
class Output:
    """One result of a job: its file name in ``results/``, media type and meaning."""

    filename: str
    media_type: str
    title: str


class OutputName(StrEnum):
    """The results of a successful job."""

    mask = "mask"
    probability = "probability"
    roads = "roads"
    preview = "preview"
    mask_preview = "mask_preview"
    scene = "scene"


COG = "image/tiff; application=geotiff; profile=cloud-optimized"
OUTPUTS: dict[OutputName, Output] = {
    OutputName.mask: Output(
        "mask.tif", COG, "Road mask: 1 road, 0 background (Cloud-Optimised GeoTIFF, scene grid)"
    ),
    OutputName.probability: Output(
        "probability.tif", COG, "Road probability 0-1 per pixel (Cloud-Optimised GeoTIFF, scene grid)"
    ),
    OutputName.roads: Output(
        "roads.geojson", "application/geo+json", "Road centrelines (RFC 7946 GeoJSON, WGS 84)"
    ),
    OutputName.preview: Output("preview.png", "image/png", "The scene with the roads drawn over it (PNG)"),
    OutputName.mask_preview: Output(
        "mask_preview.png", "image/png", "The road mask over transparency, as large as the preview (PNG)"
    ),
    # The map's imagery (service.tiles): kept as a COG so that its tiles read overviews, not the upload.
    OutputName.scene: Output(
        "scene.tif", COG, "The scene as the model saw it: 8-bit RGB (Cloud-Optimised GeoTIFF, JPEG)"
    ),
}
