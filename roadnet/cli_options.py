"""Command-line options that ``roadnet serve`` and ``roadnet worker`` share, and how they reach the
settings."""

from __future__ import annotations

import os
from pathlib import Path

import click

from roadnet.settings import Settings, get_settings

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Job records, uploads and results (default: ROADNET_DATA_DIR).",
)
concurrency_option = click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Jobs one worker runs at once; each job's ONNX Runtime uses ROADNET_ORT_INTRA_OP_THREADS threads.",
)


def settings_with_data_dir(data_dir: Path | None) -> Settings:
    """The settings, with ``--data-dir`` put in the environment so a worker process started here shares it."""
    if data_dir is not None:
        os.environ["ROADNET_DATA_DIR"] = str(data_dir.resolve())
        get_settings.cache_clear()
    return get_settings()
