"""The 3D ResUNet of Lopez-Montes et al.'s supervised path: anterior/posterior planar images (spread along the
antero-posterior axis) and the attenuation map in, 3D activity out.

As pytorch-3dunet's ResidualUNet3D (the architecture the paper cites): every level is a residual block of three
GroupNorm-Conv-ReLU units (the third without its ReLU) whose output is added to the first unit's and then passes a
ReLU; max-pooling down; up-sampling by a transposed convolution whose output is summed with the encoder's
feature maps of the same level (summed, not concatenated, skips); a final 1x1x1 convolution.

Tensors are (batch, channel, z, y, x) with y the antero-posterior axis; z, y and x must be multiples of
``2 ** (levels - 1)`` (:func:`padded_shape`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

DEFAULT_FEATURES = (16, 32, 64, 128)
"""Feature maps per level (pytorch-3dunet's ResidualUNet3D uses 64 to 1024 at five levels; this is the CPU size)."""
MAX_GROUPS = 8


def _groups(channels: int) -> int:
    """GroupNorm groups: up to :data:`MAX_GROUPS`, dividing ``channels``."""
    return next(g for g in range(min(MAX_GROUPS, channels), 0, -1) if channels % g == 0)


class NormConv(nn.Sequential):
    """GroupNorm, 3x3x3 convolution and (optionally) ReLU: pytorch-3dunet's 'gcr' single convolution."""

    def __init__(self, in_channels: int, out_channels: int, relu: bool = True) -> None:
        layers: list[nn.Module] = [
            nn.GroupNorm(_groups(in_channels), in_channels),
            nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """x1 = unit1(x); out = ReLU(unit3(unit2(x1)) + x1) (pytorch-3dunet's ExtResNetBlock)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.first = NormConv(in_channels, out_channels)
        self.second = NormConv(out_channels, out_channels)
        self.third = NormConv(out_channels, out_channels, relu=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.first(x)
        return self.relu(self.third(self.second(residual)) + residual)


class ResUNet3D(nn.Module):
    """Residual 3D U-Net with summed skips.

    Args:
        in_channels: input channels (anterior, posterior, attenuation, and the PET when conditioned on it).
        features: feature maps per level, coarsest last.
    Shapes:
        (B, in_channels, Z, Y, X) -> (B, 1, Z, Y, X), Z, Y, X multiples of ``2 ** (len(features) - 1)``.
    """

    def __init__(self, in_channels: int = 3, features: Sequence[int] = DEFAULT_FEATURES) -> None:
        super().__init__()
        features = tuple(int(f) for f in features)
        if len(features) < 2 or in_channels < 1:
            raise ValueError(f"features: need two or more levels and in_channels >= 1, got {features}, {in_channels}")
        self.in_channels, self.features = in_channels, features
        self.encoders = nn.ModuleList(
            ResidualBlock(in_channels if i == 0 else features[i - 1], f) for i, f in enumerate(features)
        )
        self.pool = nn.MaxPool3d(2)
        self.ups = nn.ModuleList(
            nn.ConvTranspose3d(features[i + 1], features[i], kernel_size=2, stride=2)
            for i in reversed(range(len(features) - 1))
        )
        self.decoders = nn.ModuleList(
            ResidualBlock(features[i], features[i]) for i in reversed(range(len(features) - 1))
        )
        self.final = nn.Conv3d(features[0], 1, kernel_size=1)

    @property
    def pet_conditioning(self) -> bool:
        """Whether the model takes the pre-therapy PET as its fourth input channel."""
        return self.in_channels == 4

    @property
    def config(self) -> dict:
        return {"architecture": "ResUNet3D", "in_channels": self.in_channels, "features": list(self.features)}

    @classmethod
    def from_config(cls, config: dict) -> ResUNet3D:
        if config.get("architecture") != "ResUNet3D":
            raise ValueError(f"architecture: expected ResUNet3D, got {config.get('architecture')!r}")
        return cls(int(config["in_channels"]), config["features"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for index, encoder in enumerate(self.encoders):
            x = encoder(x if index == 0 else self.pool(x))
            skips.append(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips[:-1]), strict=True):
            x = decoder(up(x) + skip)
        return self.final(x)


def padded_shape(shape: Sequence[int], levels: int = len(DEFAULT_FEATURES)) -> tuple[int, ...]:
    """The smallest shape >= ``shape`` whose sides are multiples of ``2 ** (levels - 1)``."""
    divisor = 2 ** (levels - 1)
    return tuple(int(n) + (-int(n) % divisor) for n in shape)
