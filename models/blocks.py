"""What the three networks share: the pad-and-crop base class, conv + batch norm + activation, He init.

Every network downsamples by a fixed factor (its ``stride``), so :class:`SegmentationModel` pads the
input on the bottom and right to the next multiple of that factor and crops the output back. The pad
amounts are computed from the input's shape with ``F.pad``, which the TorchScript ONNX exporter traces
symbolically, so the exported graph keeps height and width dynamic. Zero padding is the mean colour of a
normalised image, the least surprising value to invent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def scaled(channels: int, width: float, multiple: int = 1) -> int:
    """``channels * width`` rounded to a multiple of ``multiple`` (at least ``multiple``)."""
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    return max(multiple, multiple * round(channels * width / multiple))


def conv_bn_act(conv: nn.Module, channels: int, activation: nn.Module | None) -> nn.Sequential:
    """``conv`` (built bias-free by the caller) followed by batch norm and ``activation`` (if any)."""
    layers = [conv, nn.BatchNorm2d(channels)]
    if activation is not None:
        layers.append(activation)
    return nn.Sequential(*layers)


def conv2d(
    in_channels: int, out_channels: int, kernel_size: int | tuple[int, int] = 3, stride: int = 1
) -> nn.Conv2d:
    """A bias-free convolution (batch norm follows) with 'same' padding for odd kernels."""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    return nn.Conv2d(
        in_channels, out_channels, (kh, kw), stride=stride, padding=(kh // 2, kw // 2), bias=False
    )


def he_init(model: nn.Module, negative_slope: float) -> None:
    """He-normal (fan-in) weights for every (transposed) convolution, zero biases; BN keeps 1 and 0.

    ``negative_slope`` is that of the network's (leaky) ReLU, so the gain matches the activation.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.kaiming_normal_(module.weight, a=negative_slope, mode="fan_in", nonlinearity="leaky_relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class SegmentationModel(nn.Module):
    """Base of the networks: any (N, 3, H, W) in, (N, 1, H, W) road probability out.

    Subclasses set ``stride`` (their total downsampling) and implement :meth:`forward_padded`, which
    only ever sees sides that are multiples of ``stride``.
    """

    stride: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2], x.shape[-1]
        padded = F.pad(x, (0, (-width) % self.stride, 0, (-height) % self.stride))
        return self.forward_padded(padded)[..., :height, :width]

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """The network on an input whose sides are multiples of ``stride``."""
        raise NotImplementedError
