"""Residual Inception Skip Net (section 3.3): an encoder-decoder of asymmetric inception modules.

What the paper states, as built here:

- Inception modules in place of plain convolution blocks, with every 3x3 convolution factorised into a
  3x1 convolution, batch norm, then a 1x3 convolution (:class:`AsymmetricConv`).
- Every convolution is followed by batch norm then LeakyReLU with slope 0.1 (the paper's "-0.1x").
- He-normal initialisation (fan-in, gain for LeakyReLU 0.1).
- Downsampling: strided convolution + batch norm + LeakyReLU. Upsampling: 2x2 stride-2 transposed
  convolution (+ batch norm + LeakyReLU, as for every convolution). Both are followed by dropout.
- Skip connections between same-size encoder and decoder stages output ``x + BN(conv1x1(x))``
  (:class:`ResidualSkip`).
- Head: 1x1 convolution then a hard sigmoid.

Choices the paper leaves open, and why:

- Dropout "of 0.9" is read as keep-probability 0.9 (TensorFlow's ``keep_prob``), i.e. ``p = 0.1``:
  dropping 90% of the activations after every resampling layer would leave the decoder almost nothing
  to reconstruct thin roads from.
- The inception module is BN-Inception's (Ioffe & Szegedy, the paper's reference [8]): four parallel
  branches of equal width — 1x1; 1x1 -> 3x3; 1x1 -> 3x3 -> 3x3 (a 5x5 receptive field); 3x3 average pool
  -> 1x1 — concatenated, with each 3x3 made asymmetric. Inside the factorised pair there is batch norm
  but no activation (the paper's wording, and the pair replaces one convolution); the activation follows
  the pair's second batch norm.
- Depth and widths: one inception module per stage, five stages of 32, 64, 128, 256, 512 maps (doubling
  as resolution halves, as in U-Net) and four 3x3 stride-2 downsamplings, so the bottleneck is 16x16 for
  a 256x256 window and the input is padded to a multiple of 16. The paper warns that shrinking the
  encoder hurt, so the encoder is not thinner than the decoder. Widths scale with ``width`` in multiples
  of 4 (the four branches).
- The skip's output is concatenated with the upsampled decoder features ("just like U-Net"), and an
  inception module fuses the two.
- Hard sigmoid = ``clip(0.2 x + 0.5, 0, 1)``, Keras' and ONNX ``HardSigmoid``'s default slope (PyTorch's
  ``Hardsigmoid`` uses 1/6).
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from models.blocks import SegmentationModel, conv2d, conv_bn_act, he_init, scaled

STAGE_MAPS = (32, 64, 128, 256, 512)
NEGATIVE_SLOPE = 0.1
DROPOUT = 0.1  # the paper's "dropout of 0.9" read as keep-probability 0.9
HARD_SIGMOID_SLOPE = 0.2
BRANCHES = 4


def _act() -> nn.LeakyReLU:
    return nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True)


def _conv1x1(in_channels: int, out_channels: int) -> nn.Sequential:
    return conv_bn_act(conv2d(in_channels, out_channels, 1), out_channels, _act())


class AsymmetricConv(nn.Sequential):
    """A factorised 3x3 convolution: 3x1 conv, batch norm, 1x3 conv, batch norm, LeakyReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__(
            conv_bn_act(conv2d(channels, channels, (3, 1)), channels, None),
            conv_bn_act(conv2d(channels, channels, (1, 3)), channels, _act()),
        )


class InceptionModule(nn.Module):
    """BN-Inception's four branches with asymmetric 3x3s, concatenated to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if out_channels % BRANCHES:
            raise ValueError(f"out_channels must be a multiple of {BRANCHES}, got {out_channels}")
        b = out_channels // BRANCHES
        self.branches = nn.ModuleList(
            [
                _conv1x1(in_channels, b),
                nn.Sequential(_conv1x1(in_channels, b), AsymmetricConv(b)),
                nn.Sequential(_conv1x1(in_channels, b), AsymmetricConv(b), AsymmetricConv(b)),
                nn.Sequential(
                    nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), _conv1x1(in_channels, b)
                ),
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class ResidualSkip(nn.Module):
    """The encoder-to-decoder connection: ``x + BN(conv1x1(x))``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.residual = conv_bn_act(conv2d(channels, channels, 1), channels, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x)


class HardSigmoid(nn.Module):
    """``clip(slope * x + 0.5, 0, 1)``."""

    def __init__(self, slope: float = HARD_SIGMOID_SLOPE) -> None:
        super().__init__()
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.slope * x + 0.5, 0.0, 1.0)


class RISNet(SegmentationModel):
    """Residual Inception Skip Net: 5 stages of ``STAGE_MAPS * width`` maps, 4 downsamplings (stride 16)."""

    stride = 2 ** (len(STAGE_MAPS) - 1)

    def __init__(self, width: float = 1.0, dropout: float = DROPOUT) -> None:
        super().__init__()
        maps = [scaled(m, width, BRANCHES) for m in STAGE_MAPS]
        self.stem = InceptionModule(3, maps[0])
        self.down = nn.ModuleList(
            nn.Sequential(conv_bn_act(conv2d(cin, cout, stride=2), cout, _act()), nn.Dropout(dropout))
            for cin, cout in pairwise(maps)
        )
        self.encoder = nn.ModuleList(InceptionModule(c, c) for c in maps[1:])
        self.skips = nn.ModuleList(ResidualSkip(c) for c in maps[:-1])
        self.up = nn.ModuleList(
            nn.Sequential(
                conv_bn_act(nn.ConvTranspose2d(cin, cout, 2, stride=2, bias=False), cout, _act()),
                nn.Dropout(dropout),
            )
            for cout, cin in pairwise(maps)
        )
        self.decoder = nn.ModuleList(InceptionModule(2 * c, c) for c in maps[:-1])
        self.head = nn.Sequential(nn.Conv2d(maps[0], 1, 1), HardSigmoid())
        he_init(self, negative_slope=NEGATIVE_SLOPE)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        features = [x]
        for down, stage in zip(self.down, self.encoder, strict=True):
            x = stage(down(x))
            features.append(x)
        # decoder from the deepest stage up: stage i fuses upsampled stage i+1 with skip i
        for i in reversed(range(len(self.decoder))):
            x = self.decoder[i](torch.cat([self.up[i](x), self.skips[i](features[i])], dim=1))
        return self.head(x)
