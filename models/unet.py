"""The paper's U-Net (section 3.1): a VGG encoder with batch norm, 5 downsamplings, 128 maps throughout.

Choices the paper leaves open, and why:

- Encoder stage = VGG's two 3x3 conv + batch norm + ReLU, then 2x2 max pooling; six stages (full
  resolution and five pooled ones, deepest at 1/32) give the "5 downsampling layers", so the input is
  padded to a multiple of 32.
- Decoder stage = 2x2 stride-2 transposed convolution (+ batch norm + ReLU) to upsample, concatenation with
  the encoder stage of the same size (U-Net's skip), then two 3x3 conv + batch norm + ReLU, as in
  Ronneberger et al. Every layer has 128 maps at ``width=1``.
- Head = 1x1 convolution to one channel, sigmoid.
- He-normal initialisation, as for the other networks.
"""

from __future__ import annotations

import torch
from torch import nn

from models.blocks import SegmentationModel, conv2d, conv_bn_act, he_init, scaled

DOWNSAMPLINGS = 5
FEATURE_MAPS = 128


def _vgg_stage(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        conv_bn_act(conv2d(in_channels, out_channels), out_channels, nn.ReLU(inplace=True)),
        conv_bn_act(conv2d(out_channels, out_channels), out_channels, nn.ReLU(inplace=True)),
    )


class UNet(SegmentationModel):
    """U-Net with a constant ``128 * width`` feature maps and 5 downsamplings (stride 32)."""

    stride = 2**DOWNSAMPLINGS

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c = scaled(FEATURE_MAPS, width)
        self.encoder = nn.ModuleList([_vgg_stage(3, c)] + [_vgg_stage(c, c) for _ in range(DOWNSAMPLINGS)])
        self.pool = nn.MaxPool2d(2)
        self.upsample = nn.ModuleList(
            conv_bn_act(nn.ConvTranspose2d(c, c, 2, stride=2, bias=False), c, nn.ReLU(inplace=True))
            for _ in range(DOWNSAMPLINGS)
        )
        self.decoder = nn.ModuleList(_vgg_stage(2 * c, c) for _ in range(DOWNSAMPLINGS))
        self.head = nn.Conv2d(c, 1, 1)
        he_init(self, negative_slope=0.0)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, stage in enumerate(self.encoder):
            x = stage(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()  # the deepest stage feeds the decoder directly
        for up, stage in zip(self.upsample, self.decoder, strict=True):
            x = stage(torch.cat([up(x), skips.pop()], dim=1))
        return torch.sigmoid(self.head(x))
