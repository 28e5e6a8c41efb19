"""The residual dose-rate network of Li, Fessler, Mikell, Wilderman and Dewaraja (their code: DblurDoseNet).

Each output slice is predicted from a pack of :data:`PACK_SLICES` (11) neighbouring slices of two channels,
activity and density. A 3D front end collapses the pack's depth to one slice of 16 feature maps; a 2D U-Net
(4 levels, 16 to 256 filters, BatchNorm and LeakyReLU(0.1), max-pool down, nearest up; MONAI's
:class:`~monai.networks.nets.BasicUNet`) maps them to a correction that is added to the VDK dose-rate slice:
output = U-Net + VDK.

Departure from the published front end, for whole-volume inference: the published one pads the first
convolution's depth by one slice inside each pack and pools depth with stride 2, so a slice's prediction
depends on where its pack starts. Here every depth operation is "valid" and of stride 1 (convolution depth 5,
max-pool depth 3, two convolutions of depth 3: 11 -> 7 -> 5 -> 3 -> 1 slices, the same 11-slice receptive
field), so running the front end once over a whole volume padded with 5 zero slices at each end gives
exactly what running it pack by pack gives (tested). In-plane kernels (7 x 7) and channels (2 -> 8 -> 16 ->
16) are the published ones.

Tensors are (batch, channel, depth, height, width) = (B, C, z, y, x).
"""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution
from monai.networks.nets import BasicUNet
from torch import nn

PACK_SLICES = 11
"""Input slices seen by one output slice."""
HALF_PACK = PACK_SLICES // 2
UNET_FEATURES = (16, 32, 64, 128, 256, 16)
"""BasicUNet features: four levels from 16 to 256 filters, 16 in the last up-sampling block."""
UNET_DIVISOR = 16
"""Height and width must be multiples of this (four 2x poolings)."""
LEAKY_RELU = ("LeakyReLU", {"negative_slope": 0.1, "inplace": True})


class DepthFrontEnd(nn.Module):
    """3D front end: (B, in_channels, D, H, W) -> (B, out_channels, D - 10, H, W), each output slice from 11 input
    slices; convolutions are "same" in-plane and "valid" in depth, every stride is 1."""

    def __init__(self, in_channels: int = 2, mid_channels: int = 8, out_channels: int = 16) -> None:
        super().__init__()
        self.first = Convolution(
            3, in_channels, mid_channels, kernel_size=(5, 7, 7), padding=(0, 3, 3), act=LEAKY_RELU, norm="batch",
            bias=False,
        )  # fmt: skip
        self.pool = nn.MaxPool3d(kernel_size=(3, 1, 1), stride=1)
        self.second = Convolution(
            3, mid_channels, out_channels, kernel_size=(3, 7, 7), padding=(0, 3, 3), act=LEAKY_RELU, norm="batch",
            bias=False,
        )  # fmt: skip
        self.last = nn.Conv3d(out_channels, out_channels, kernel_size=(3, 7, 7), padding=(0, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.second(self.pool(self.first(x))))


class ResidualDoseNet(nn.Module):
    """Dose-rate correction network: output = 2D U-Net(3D front end(activity, density)) + VDK.

    Shapes: ``activity`` and ``density`` (B, 1, S + 10, H, W) -> output (B, 1, S, H, W) for ``vdk`` of shape
    (B, 1, S, H, W); H and W multiples of :data:`UNET_DIVISOR`. Values are in the normalised units of
    :mod:`DoseRateCNNLib.normalisation`; no clamping here (training sees the raw residual output).
    """

    def __init__(self) -> None:
        super().__init__()
        self.front = DepthFrontEnd()
        self.unet = BasicUNet(
            spatial_dims=2, in_channels=16, out_channels=1, features=UNET_FEATURES, act=LEAKY_RELU, norm="batch",
            upsample="nontrainable",
        )  # fmt: skip

    def forward(self, activity: torch.Tensor, density: torch.Tensor, vdk: torch.Tensor) -> torch.Tensor:
        features = self.front(torch.cat((activity, density), dim=1))  # (B, 16, S, H, W)
        batch, channels, slices, height, width = features.shape
        flat = features.permute(0, 2, 1, 3, 4).reshape(batch * slices, channels, height, width)
        correction = self.unet(flat).reshape(batch, slices, 1, height, width).permute(0, 2, 1, 3, 4)
        return correction + vdk
