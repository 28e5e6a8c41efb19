"""Network building blocks MONAI lacks: the recurrent residual blocks and U-Net of R2U-Net.

R2U-Net (Alom et al. 2018, arXiv:1802.06955) replaces each pair of convolutions of a U-Net with a
recurrent residual block. Inside it, a recurrent convolution block applies one convolution
(weights shared) ``t + 1`` times, each time to the block input plus its previous output:
``x1 = conv(x); for _ in range(t): x1 = conv(x + x1)``. MONAI's
:class:`~monai.networks.blocks.Convolution` (convolution, normalisation, dropout, activation) is
the convolution used throughout.

Tensors are channel-first: ``(batch, channels, *spatial)`` with 2 or 3 spatial dimensions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from torch import nn


class RecurrentConvBlock(nn.Module):
    """One convolution applied recurrently ``t + 1`` times with shared weights.

    ``x1 = conv(x); for _ in range(t): x1 = conv(x + x1)``, where ``conv`` is a MONAI
    :class:`Convolution` (``kernel_size`` convolution, then normalisation, dropout, activation).
    The parameter count is that of a single convolution, whatever ``t``.

    Args:
        spatial_dims: number of spatial dimensions (2 or 3).
        channels: input and output channels (the recurrence adds input and output).
        t: number of recurrent steps after the first convolution; ``t = 0`` is a plain convolution.
        kernel_size: convolution kernel size (odd, so the spatial size is kept).
        act: MONAI activation name or ``(name, kwargs)``.
        norm: MONAI normalisation name or ``(name, kwargs)``.
        dropout: dropout probability (``None`` or 0 for none).

    Shapes:
        input ``(B, channels, *spatial)`` -> output ``(B, channels, *spatial)``.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        t: int = 2,
        kernel_size: int = 3,
        act: tuple | str = "RELU",
        norm: tuple | str = "BATCH",
        dropout: float | None = None,
    ) -> None:
        super().__init__()
        if t < 0:
            raise ValueError(f"t: must be >= 0 recurrent steps, got {t}")
        self.t = t
        self.conv = Convolution(
            spatial_dims, channels, channels, kernel_size=kernel_size, act=act, norm=norm, dropout=dropout
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, *spatial)`` -> ``(B, C, *spatial)``."""
        x1 = self.conv(x)
        for _ in range(self.t):
            x1 = self.conv(x + x1)
        return x1


class RecurrentResidualBlock(nn.Module):
    """R2U-Net's recurrent residual block (RRCNN).

    A 1x1(x1) convolution projects the input to ``out_channels`` (``p``); two recurrent
    convolution blocks, each with its own shared-weight convolution, follow; the block returns
    ``p + recurrent(p)``.

    Args:
        spatial_dims: number of spatial dimensions (2 or 3).
        in_channels: input channels.
        out_channels: output channels.
        t: recurrent steps of each of the two recurrent blocks.
        kernel_size, act, norm, dropout: as for :class:`RecurrentConvBlock`.

    Shapes:
        input ``(B, in_channels, *spatial)`` -> output ``(B, out_channels, *spatial)``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        t: int = 2,
        kernel_size: int = 3,
        act: tuple | str = "RELU",
        norm: tuple | str = "BATCH",
        dropout: float | None = None,
    ) -> None:
        super().__init__()
        self.project = Convolution(spatial_dims, in_channels, out_channels, kernel_size=1, conv_only=True)
        self.recurrent = nn.Sequential(
            *(
                RecurrentConvBlock(spatial_dims, out_channels, t, kernel_size, act=act, norm=norm, dropout=dropout)
                for _ in range(2)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, *spatial)`` -> ``(B, out_channels, *spatial)``."""
        projected = self.project(x)
        return projected + self.recurrent(projected)


class R2UNet(nn.Module):
    """Recurrent residual U-Net (R2U-Net, Alom et al. 2018) for 2D or 3D images.

    Encoder: one :class:`RecurrentResidualBlock` per entry of ``channels``, with a 2x max-pool
    before every level but the first. Decoder: per level, a stride-2 transposed convolution
    (``up_kernel_size``, halving the channels to the skip's), concatenation with the encoder skip,
    and a recurrent residual block. A 1x1(x1) convolution maps ``channels[0]`` to
    ``out_channels``; the output is linear (no activation), so a wrapper can choose its own.

    Args:
        spatial_dims: number of spatial dimensions (2 or 3).
        in_channels: input channels.
        out_channels: output channels.
        channels: feature channels per level, finest first; ``len(channels) - 1`` downsamplings.
        t: recurrent steps of every recurrent convolution block.
        kernel_size: kernel of the recurrent convolutions.
        up_kernel_size: kernel of the transposed convolutions (2 tiles the output without overlap).
        act: MONAI activation (default ReLU, as in Alom et al.).
        norm: MONAI normalisation (default batch norm, as in Alom et al.).
        dropout: dropout probability inside the recurrent convolutions.

    Shapes:
        input ``(B, in_channels, *spatial)`` -> output ``(B, out_channels, *spatial)``; every
        spatial size must be a multiple of ``2 ** (len(channels) - 1)`` (see
        :attr:`required_multiple`); a full-FOV 128^3 SPECT fits up to 8 levels.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 1,
        out_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64, 128),
        t: int = 2,
        kernel_size: int = 3,
        up_kernel_size: int = 2,
        act: tuple | str = "RELU",
        norm: tuple | str = "BATCH",
        dropout: float | None = None,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims: must be 2 or 3, got {spatial_dims}")
        channels = tuple(int(c) for c in channels)
        if len(channels) < 2 or min(channels) < 1:
            raise ValueError(f"channels: need at least 2 levels of positive channel counts, got {channels}")
        self.spatial_dims = spatial_dims
        self.required_multiple = 2 ** (len(channels) - 1)
        block = {"t": t, "kernel_size": kernel_size, "act": act, "norm": norm, "dropout": dropout}
        up_padding = (up_kernel_size - 1) // 2  # with this output padding, every upsampling doubles the size
        up_output_padding = 2 + 2 * up_padding - up_kernel_size
        pool = nn.MaxPool3d if spatial_dims == 3 else nn.MaxPool2d
        self.pool = pool(kernel_size=2, stride=2)
        self.encoders = nn.ModuleList(
            RecurrentResidualBlock(spatial_dims, c_in, c_out, **block)
            for c_in, c_out in zip((in_channels, *channels[:-1]), channels, strict=True)
        )
        self.upsamplers = nn.ModuleList(
            Convolution(
                spatial_dims,
                coarse,
                fine,
                strides=2,
                kernel_size=up_kernel_size,
                act=act,
                norm=norm,
                is_transposed=True,
                padding=up_padding,
                output_padding=up_output_padding,
            )
            for fine, coarse in zip(channels[:-1], channels[1:], strict=True)
        )
        self.decoders = nn.ModuleList(
            RecurrentResidualBlock(spatial_dims, 2 * fine, fine, **block) for fine in channels[:-1]
        )
        self.output = Convolution(spatial_dims, channels[0], out_channels, kernel_size=1, conv_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, *spatial)`` -> ``(B, out_channels, *spatial)``.

        Raises ValueError when the input is not ``spatial_dims``-dimensional or a spatial size is
        not a multiple of :attr:`required_multiple`.
        """
        check_spatial_shape(x, self.spatial_dims, self.required_multiple)
        skips = []
        for level, encoder in enumerate(self.encoders):
            x = encoder(x if level == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for upsampler, decoder in zip(reversed(self.upsamplers), reversed(self.decoders), strict=True):
            x = decoder(torch.cat((skips.pop(), upsampler(x)), dim=1))
        return self.output(x)


def check_spatial_shape(x: torch.Tensor, spatial_dims: int, multiple: int) -> None:
    """Raise ValueError unless ``x`` is ``(B, C, *spatial)`` with every spatial size a multiple of ``multiple``."""
    if x.ndim != spatial_dims + 2:
        raise ValueError(
            f"input: expected a (batch, channel, {spatial_dims} spatial) tensor, got shape {tuple(x.shape)}"
        )
    spatial = tuple(x.shape[2:])
    if any(size % multiple for size in spatial):
        raise ValueError(
            f"input: spatial size {spatial} must be a multiple of {multiple} "
            f"(2 ** number of downsamplings); crop or pad the volume, e.g. to 128^3"
        )
