"""Differentiable image losses for training (torch), equal to the metrics they stand for.

:func:`ssim_map` is :func:`DosimetryCore.evaluation.metrics.ssim_map` (Wang et al. 2004, 3D Gaussian window,
standard deviation :data:`~DosimetryCore.evaluation.metrics.SSIM_SIGMA` voxels truncated at 3.5 sigma,
population moments, borders mirrored as ``scipy.ndimage`` mode ``"reflect"``) written with torch
so that a network can be trained on it; the tests check that both give the same numbers.
:func:`masked_ssim` averages it over a region per sample, as seed 003 (Leube et al.) evaluates
SSIM inside the true active region.

Shapes: ``(B, 1, z, y, x)`` for images and masks; values in any unit as long as ``data_range``
is in the same unit.
"""

from __future__ import annotations

import torch
from torch.nn import functional

from DosimetryCore.evaluation.metrics import SSIM_K1, SSIM_K2, SSIM_SIGMA, SSIM_TRUNCATE


def gaussian_taps(sigma: float, dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> torch.Tensor:
    """Normalised 1D Gaussian of standard deviation ``sigma`` (voxels), radius int(3.5 sigma + 0.5), as scipy."""
    if not sigma > 0:
        raise ValueError(f"sigma: expected a positive window width in voxels, got {sigma}")
    radius = int(SSIM_TRUNCATE * float(sigma) + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (offsets / float(sigma)) ** 2)
    return (taps / taps.sum()).to(dtype=dtype, device=device)


def _reflect_pad(image: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Pad ``image`` by ``radius`` on both sides of ``dim``, half-sample symmetric (scipy "reflect": dcba|abcd)."""
    length = image.shape[dim]
    if radius > length:
        raise ValueError(f"image: {length} voxels along axis {dim} are fewer than the SSIM window radius {radius}")
    before = image.narrow(dim, 0, radius).flip(dim)
    after = image.narrow(dim, length - radius, radius).flip(dim)
    return torch.cat([before, image, after], dim=dim)


def gaussian_filter(image: torch.Tensor, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Separable Gaussian smoothing of ``(B, C, z, y, x)`` along z, y and x, borders mirrored (scipy "reflect")."""
    if image.ndim != 5:
        raise ValueError(f"image: expected shape (B, C, z, y, x), got {tuple(image.shape)}")
    taps = gaussian_taps(sigma, image.dtype, image.device)
    radius = (taps.numel() - 1) // 2
    batch, channels = image.shape[:2]
    out = image.reshape(batch * channels, 1, *image.shape[2:])
    for axis in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = taps.numel()
        out = functional.conv3d(_reflect_pad(out, radius, 2 + axis), taps.view(shape))
    return out.reshape(image.shape)


def ssim_map(prediction: torch.Tensor, target: torch.Tensor, data_range: float | torch.Tensor,
             sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Local SSIM of ``prediction`` to ``target``, shape ``(B, C, z, y, x)``,
    as :func:`DosimetryCore.evaluation.metrics.ssim_map`.

    ``data_range`` (L, in the images' unit) is a number or a tensor broadcastable to the batch,
    e.g. shape ``(B, 1, 1, 1, 1)`` for one range per sample.
    """
    if prediction.shape != target.shape:
        raise ValueError(f"prediction: shape {tuple(prediction.shape)} differs from the target's {tuple(target.shape)}")
    prediction = prediction / data_range
    target = target / data_range
    mu_p = gaussian_filter(prediction, sigma)
    mu_t = gaussian_filter(target, sigma)
    mu_pt, mu_pp, mu_tt = mu_p * mu_t, mu_p * mu_p, mu_t * mu_t
    var_p = gaussian_filter(prediction * prediction, sigma) - mu_pp
    var_t = gaussian_filter(target * target, sigma) - mu_tt
    cov = gaussian_filter(prediction * target, sigma) - mu_pt
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    return (2.0 * mu_pt + c1) * (2.0 * cov + c2) / ((mu_pp + mu_tt + c1) * (var_p + var_t + c2))


def masked_ssim(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, data_range: float | torch.Tensor,
                sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Mean SSIM inside ``mask`` for each sample: shape ``(B,)``; a sample with an empty mask counts its whole image."""
    similarity = ssim_map(prediction, target, data_range, sigma).flatten(1)
    weights = mask.to(similarity.dtype).flatten(1)
    empty = weights.sum(dim=1) == 0
    weights = torch.where(empty[:, None], torch.ones_like(weights), weights)
    return (similarity * weights).sum(dim=1) / weights.sum(dim=1)
