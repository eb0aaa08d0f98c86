"""Networks by name: :data:`ARCHITECTURES` and :func:`create_model`.

Importing this module does not import torch, so the CLI and the runtime install can list the names; the
architecture's module (and torch) is imported when a model is built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from roadnet.errors import InputError, MissingDependencyError

if TYPE_CHECKING:
    from torch import nn

# name -> (module, class)
_CLASSES = {
    "unet": ("models.unet", "UNet"),
    "deeplab": ("models.deeplab", "DeepLab"),
    "risnet": ("models.risnet", "RISNet"),
}
ARCHITECTURES: tuple[str, ...] = tuple(_CLASSES)


class UnknownArchitectureError(InputError, KeyError):
    """An architecture name that is not in :data:`ARCHITECTURES`."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def create_model(arch: str, **kwargs: Any) -> nn.Module:
    """Build the network ``arch`` (one of :data:`ARCHITECTURES`) with ``kwargs`` (e.g. ``width=0.25``).

    The model maps a normalised float ``(N, 3, H, W)`` to road probability ``(N, 1, H, W)`` in [0, 1]
    for any H, W. Raises :class:`UnknownArchitectureError` (a ``KeyError``) listing the choices.
    """
    try:
        module_name, class_name = _CLASSES[arch]
    except KeyError:
        raise UnknownArchitectureError(
            f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHITECTURES)}"
        ) from None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == "torch":
            raise MissingDependencyError("torch", "train") from exc
        raise
    model: nn.Module = getattr(module, class_name)(**kwargs)
    return model
