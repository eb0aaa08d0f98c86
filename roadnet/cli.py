"""The ``roadnet`` command line.

Each package keeps its commands in its own ``cli.py`` and imports heavy dependencies (torch, onnxruntime)
inside the command, so ``roadnet --help`` works with the runtime install alone.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import click

from roadnet import __version__
from roadnet.errors import MissingDependencyError, RoadnetError
from roadnet.logs import configure_logging
from roadnet.settings import get_settings

#: Commands that need the training extra (torch).
TORCH_COMMANDS = frozenset({"train", "export", "average", "quantize", "evaluate", "models"})


class _Group(click.Group):
    """A group that turns roadnet's own errors into a one-line message and exit status 2."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in TORCH_COMMANDS:
            raise click.UsageError(f"'roadnet {cmd_name}': {MissingDependencyError('torch', 'train')}")
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RoadnetError as exc:
            raise click.UsageError(str(exc)) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="roadnet")
@click.option("--log-level", default=None, help="Logging level (default: ROADNET_LOG_LEVEL or INFO).")
def cli(log_level: str | None) -> None:
    """Road extraction from satellite imagery."""
    configure_logging(log_level or get_settings().log_level)


@cli.command("settings")
def settings_command() -> None:
    """Print the effective settings (from ROADNET_* environment variables) as JSON, keys masked."""
    click.echo(json.dumps(get_settings().public(), indent=2))


def main() -> None:
    """Console-script entry point."""
    cli()


# Package commands; each imports its heavy dependencies inside the command body. The training commands
# are listed only where torch is installed (the runtime install has none); asked for without it, they
# answer with the extra to install.
from service.cli import serve_command  # noqa: E402
from worker.inference.cli import predict_command  # noqa: E402
from worker.runner.cli import worker_command  # noqa: E402
from worker.vector.cli import score_graph_command, vectorize_command  # noqa: E402

for _command in (predict_command, vectorize_command, score_graph_command, serve_command, worker_command):
    cli.add_command(_command)
if importlib.util.find_spec("torch") is not None:
    from models.cli import models_command
    from training.cli import (
        average_command,
        evaluate_command,
        export_command,
        quantize_command,
        train_command,
    )

    for _command in (
        train_command,
        export_command,
        average_command,
        quantize_command,
        evaluate_command,
        models_command,
    ):
        cli.add_command(_command)
