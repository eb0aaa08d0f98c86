"""``roadnet models``: the architectures with their size and cost. torch is imported inside the command."""

from __future__ import annotations

import click

from models.registry import ARCHITECTURES, create_model
from roadnet.errors import MissingDependencyError


def model_cost(arch: str, width: float = 1.0, window: int = 256) -> tuple[int, float]:
    """Parameters and GFLOPs of one ``window`` x ``window`` forward pass of ``arch`` at ``width``.

    FLOPs are PyTorch's ``FlopCounterMode`` count: 2 per multiply-accumulate of the (transposed)
    convolutions; batch norm, activations, pooling and additions are not counted.
    """
    try:
        import torch
        from torch.utils.flop_counter import FlopCounterMode
    except ModuleNotFoundError as exc:
        raise MissingDependencyError("torch", "train") from exc
    model = create_model(arch, width=width).eval()
    parameters = sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, window, window))
    return parameters, counter.get_total_flops() / 1e9


@click.command("models")
@click.option("--width", default=1.0, show_default=True, help="Channel multiplier (1.0 = paper size).")
@click.option("--window", default=256, show_default=True, help="Side of the square window costed.")
def models_command(width: float, window: int) -> None:
    """List the architectures with their parameters and GFLOPs per window."""
    rows = [(arch, *model_cost(arch, width, window)) for arch in ARCHITECTURES]
    click.echo(f"{'architecture':<14}{'parameters':>12}{f'GFLOPs@{window}':>14}")
    for arch, parameters, gflops in rows:
        click.echo(f"{arch:<14}{parameters:>12,}{gflops:>14.2f}")
    click.echo(
        f"width {width}; GFLOPs = 2 x multiply-accumulates of the convolutions, one {window}x{window} window"
    )
