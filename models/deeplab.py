"""The paper's ResNet "DeepLab" (section 3.2): 55 3x3 convolutions, features at 1/8, a 3-layer decoder.

The paper's counts do not add up literally: four parts of "6 residual blocks + a stride-2 convolution"
are 52 convolutions and 1/16 resolution, yet it states 55 and 1/8. This module keeps what it states as
results — 55 3x3 convolutions, 16/32/64/128 kernels in four parts, 128 maps at 1/8 resolution — with:

- Stem: three 3x3 conv + batch norm + ReLU at 16 maps (the three-convolution stem of DeepLab's ResNet).
- Four parts, each 6 residual blocks (two 3x3 convolutions each, ResNet's basic block with identity
  shortcut) closed by one 3x3 convolution: 13 convolutions per part, as the paper says. The closing
  convolution of parts 1-3 has stride 2 and widens to the next part's kernels (16->32->64->128); that of
  part 4 keeps stride 1 and 128 maps. 3 + 4 x 13 = 55 convolutions, 3 downsamplings = 1/8 resolution.
  No atrous convolutions: the paper describes none.
- Each residual block's last batch norm starts with zero scale, so the 24 blocks start as identities
  (Goyal et al. 2017, torchvision's ``zero_init_residual``): otherwise each sum doubles the activations'
  variance and an untrained model's eval-mode outputs grow ~4000-fold through the encoder, too far for
  float32 to export and compare.
- Decoder: three 4x4 stride-2 transposed convolutions (+ batch norm + ReLU) with 64, 32, 16 kernels, each
  doubling the resolution back to full size; no skip connections (the paper names none).
- Head: 1x1 convolution to one channel, sigmoid. He-normal initialisation.
"""

from __future__ import annotations

import torch
from torch import nn

from models.blocks import SegmentationModel, conv2d, conv_bn_act, he_init, scaled

PART_KERNELS = (16, 32, 64, 128)
BLOCKS_PER_PART = 6
STEM_CONVS = 3
DECODER_KERNELS = (64, 32, 16)


class ResidualBlock(nn.Module):
    """ResNet's basic block: two 3x3 conv + batch norm, identity shortcut, ReLU after the sum."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        last_bn = nn.BatchNorm2d(channels)
        nn.init.zeros_(last_bn.weight)  # start as identity (module docstring)
        self.body = nn.Sequential(
            conv_bn_act(conv2d(channels, channels), channels, nn.ReLU(inplace=True)),
            conv2d(channels, channels),
            last_bn,
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.body(x))


class DeepLab(SegmentationModel):
    """ResNet encoder of 55 3x3 convolutions to 1/8 resolution and a 3-layer upsampling decoder."""

    stride = 2 ** (len(PART_KERNELS) - 1)

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        kernels = [scaled(k, width) for k in PART_KERNELS]
        layers: list[nn.Module] = [
            conv_bn_act(conv2d(3 if i == 0 else kernels[0], kernels[0]), kernels[0], nn.ReLU(inplace=True))
            for i in range(STEM_CONVS)
        ]
        for i, c in enumerate(kernels):
            last = i == len(kernels) - 1
            out = c if last else kernels[i + 1]
            layers += [ResidualBlock(c) for _ in range(BLOCKS_PER_PART)]
            layers.append(conv_bn_act(conv2d(c, out, stride=1 if last else 2), out, nn.ReLU(inplace=True)))
        self.encoder = nn.Sequential(*layers)
        decoder: list[nn.Module] = []
        c = kernels[-1]
        for k in DECODER_KERNELS:
            out = scaled(k, width)
            up = nn.ConvTranspose2d(c, out, 4, stride=2, padding=1, bias=False)
            decoder.append(conv_bn_act(up, out, nn.ReLU(inplace=True)))
            c = out
        self.decoder = nn.Sequential(*decoder)
        self.head = nn.Conv2d(c, 1, 1)
        he_init(self, negative_slope=0.0)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.decoder(self.encoder(x))))
