"""Whole-volume inference of :class:`DoseRateCNNLib.network.ResidualDoseNet`: one pass of the front end over the
depth-padded volume instead of a Python loop over packs, in chunks of slices to bound memory.

A pack of slice i holds slices i - 5 .. i + 5, zero beyond the volume's ends; padding the volume with 5 zero
slices at each end and running the depth-"valid" front end over it gives every slice's prediction at once,
equal to pack-by-pack inference (tested). Height and width are padded with zeros to multiples of 16 and
cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .network import HALF_PACK, UNET_DIVISOR, ResidualDoseNet

DEFAULT_CHUNK_SLICES = 16
"""Output slices per forward pass (memory: about 0.3 GB per slice at 512 x 512)."""


def _padded_in_plane(volume: torch.Tensor) -> torch.Tensor:
    height, width = volume.shape[-2:]
    pad_h, pad_w = -height % UNET_DIVISOR, -width % UNET_DIVISOR
    return F.pad(volume, (0, pad_w, 0, pad_h))


@torch.no_grad()
def predict_volume(
    model: ResidualDoseNet,
    activity: torch.Tensor,
    density: torch.Tensor,
    vdk: torch.Tensor,
    chunk_slices: int = DEFAULT_CHUNK_SLICES,
) -> torch.Tensor:
    """The network's output for every slice of a volume, in the model's (normalised) units.

    Args:
        model: the network, put in eval mode here.
        activity, density, vdk: normalised inputs, each of shape (z, y, x), on the model's device.
        chunk_slices: output slices per forward pass (>= 1).
    Returns:
        tensor (z, y, x): U-Net correction + VDK, not clamped.
    """
    if not (activity.shape == density.shape == vdk.shape) or activity.ndim != 3:
        shapes = [tuple(t.shape) for t in (activity, density, vdk)]
        raise ValueError(f"activity, density, vdk: expected three 3D tensors of one shape (z, y, x), got {shapes}")
    if chunk_slices < 1:
        raise ValueError(f"chunk_slices: expected >= 1, got {chunk_slices}")
    model.eval()
    slices, height, width = activity.shape
    depth_pad = (0, 0, 0, 0, HALF_PACK, HALF_PACK)
    inputs = [_padded_in_plane(F.pad(t, depth_pad))[None, None] for t in (activity, density)]
    vdk_padded = _padded_in_plane(vdk)[None, None]
    outputs = []
    for start in range(0, slices, chunk_slices):
        stop = min(start + chunk_slices, slices)
        window = slice(start, stop + 2 * HALF_PACK)
        chunk = model(inputs[0][:, :, window], inputs[1][:, :, window], vdk_padded[:, :, start:stop])
        outputs.append(chunk[0, 0, :, :height, :width])
    return torch.cat(outputs, dim=0)
