"""Training access to a DoseRateCNN dataset: network units, the weighted loss, 11-slice packs as a torch Dataset.

Network units (as DblurDoseNet: activity divided by its total, so the network never sees the count level or the
administered activity). With A the SPECT's total activity in the field (MBq):

- activity input = SPECT concentration (Bq/mL) / A x :data:`ACTIVITY_SCALE`;
- density input = density (g/cm^3);
- VDK input, network output and label = dose rate (Gy/h) / A x :data:`DOSE_RATE_SCALE`.

Dose rate is linear in activity, so a prediction in network units times A / :data:`DOSE_RATE_SCALE` is the dose
rate in Gy/h. The scales put a torso's mean near 1 (a field of 4 GBq in 40 L of body: about 25 Bq/mL per MBq and
2e-6 Gy/h per MBq).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from DosimetryCore.core.constants import BQ_PER_MBQ
from DosimetryCore.learning.case_folder import SPLITS

from .dataset import load_case, read_manifest
from .network import HALF_PACK, PACK_SLICES, UNET_DIVISOR, ResidualDoseNet
from .region_weights import region_ids, region_weights_of

ACTIVITY_SCALE = 0.04
"""Network activity units per (Bq/mL per MBq in the field)."""
DOSE_RATE_SCALE = 5.0e5
"""Network dose-rate units per (Gy/h per MBq in the field)."""
BODY_WEIGHT = 0.7
"""Loss weight of the mean squared error inside the body (Li et al.: 0.7 body, 0.3 outside)."""
MEAN_WEIGHT = 2.0
"""Weight of the region-mean term of :func:`region_mean_weighted_mse` beside the voxel term (1 would count a
region's mean error as much as it already counts inside the voxel term, i.e. twice in all)."""


def total_activity_MBq(concentration: np.ndarray, voxel_ml: float) -> float:
    """Activity (MBq) of a concentration image (Bq/mL) with voxels of ``voxel_ml``."""
    return float(np.asarray(concentration).sum(dtype=np.float64)) * voxel_ml / BQ_PER_MBQ


def body_weighted_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Li et al.'s loss: 0.7 x MSE inside the body + 0.3 x MSE outside.

    ``prediction`` (B, 1, 1, H, W); ``target`` (B, 2, 1, H, W): channel 0 the label, channel 1 the body mask
    (1 inside, 0 outside).
    """
    label, body = target[:, :1], target[:, 1:2]
    return _inside_outside_mse((prediction - label) ** 2, body, body)


def region_weighted_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Li et al.'s loss with each body voxel's squared error weighted by its region's weight (1 / (voxels x VDK's
    mean squared error there), so every organ and lesion counts alike): 0.7 x mean over the body of (w x squared
    error) + 0.3 x MSE outside, w from :func:`DoseRateCNNLib.region_weights.region_weight_map`.

    ``prediction`` (B, 1, 1, H, W); ``target`` (B, 3, 1, H, W): the label, the body mask and the weights.
    """
    label, body, weights = target[:, :1], target[:, 1:2], target[:, 2:3]
    return _inside_outside_mse((prediction - label) ** 2, body, weights * body)


def region_mean_weighted_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """:func:`region_weighted_mse` plus :data:`MEAN_WEIGHT` x the same weights on each region's mean error.

    A network trained on voxel errors alone predicts the conditional mean of the label given the SPECT, which is
    unbiased for a given input but not over a region chosen by where the truth is hot: over an organ or lesion
    drawn on the anatomy (what dosimetry reports) it falls short by the partial-volume loss it could not undo.
    The added term is, for every item b and region R in it (a slice crop of an organ or lesion),
    w_R n_bR (mean error of R in b)^2, with the voxel term's weights w_R, summed and divided by the body voxels
    as the voxel term. Since n (mean error)^2 <= the sum of squared errors over the same voxels, this term is the
    part of the voxel term that a region's mean error explains, counted (1 + MEAN_WEIGHT) times.

    ``prediction`` (B, 1, 1, H, W); ``target`` (B, 4, 1, H, W): the label, the body mask, the weights and the
    region index (:func:`DoseRateCNNLib.region_weights.region_ids`, 0 outside the body).
    """
    voxel_term = region_weighted_mse(prediction, target[:, :3])
    body, weights, ids = target[:, 1], target[:, 2], target[:, 3].round().long()
    batch = ids.shape[0]
    regions = int(ids.max().item()) + 1
    flat = (ids + regions * torch.arange(batch, device=ids.device).view(batch, 1, 1, 1)).reshape(-1)
    error = (prediction[:, 0] - target[:, 0]).reshape(-1)
    sums = torch.zeros(batch * regions, dtype=error.dtype, device=error.device).index_add_(0, flat, error)
    counts = torch.zeros_like(sums).index_add_(0, flat, torch.ones_like(error))
    weight_sums = torch.zeros_like(sums).index_add_(0, flat, weights.reshape(-1).to(error.dtype))
    keep = (torch.arange(batch * regions, device=ids.device) % regions > 0) & (counts > 0)  # 0: outside the body
    mean_term = (weight_sums[keep] * (sums[keep] / counts[keep]) ** 2).sum() / body.sum().clamp_min(1.0)
    return voxel_term + MEAN_WEIGHT * BODY_WEIGHT * mean_term


def _inside_outside_mse(squared: torch.Tensor, body: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    inside = (squared * weights).sum() / body.sum().clamp_min(1.0)
    outside = (squared * (1 - body)).sum() / (1 - body).sum().clamp_min(1.0)
    return BODY_WEIGHT * inside + (1.0 - BODY_WEIGHT) * outside


class PackedDoseNet(nn.Module):
    """:class:`ResidualDoseNet` taking one tensor, for the shared training loop.

    Input (B, 3, 11, H, W): channels activity, density and VDK packs (the VDK's centre slice is used); output
    (B, 1, 1, H, W).
    """

    def __init__(self) -> None:
        super().__init__()
        self.net = ResidualDoseNet()

    @property
    def config(self) -> dict:
        return {"architecture": "ResidualDoseNet", "pack_slices": PACK_SLICES}

    @classmethod
    def from_config(cls, config: dict) -> PackedDoseNet:
        if config.get("architecture") != "ResidualDoseNet" or config.get("pack_slices") != PACK_SLICES:
            raise ValueError(f"architecture: expected ResidualDoseNet with {PACK_SLICES}-slice packs, got {config}")
        return cls()

    def forward(self, packs: torch.Tensor) -> torch.Tensor:
        centre = packs[:, 2:3, HALF_PACK : HALF_PACK + 1]
        return self.net(packs[:, 0:1], packs[:, 1:2], centre)


def _padded(shape: tuple[int, int]) -> tuple[int, int]:
    return tuple(n + (-n % UNET_DIVISOR) for n in shape)


class DoseSliceDataset(Dataset):
    """Slices of every (case, count level) of one split of a dataset folder as ``(packs, target)`` pairs.

    Args:
        folder: a dataset written by ``simulate-dose``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        levels: count-level indices to use (default all).
        slice_step: without ``random_slices``, every ``slice_step``-th slice of each volume (1: all).
        random_slices: instead, this many items per (case, level), each a slice drawn at random when read.
        crop: in-plane size (multiple of 16) of a random crop of each item (None: the whole padded slice).
        flips: mirror each item left-right, front-back and head-foot with probability 1/2 each; a mirrored
            patient is as valid a physics case.
        max_cases: use only the first cases of the split (for quick runs).
        region_weights: add the loss weights of :func:`~DoseRateCNNLib.region_weights.region_weight_map` to each
            target (for :func:`region_weighted_mse`).
        region_index: also add the region index of :func:`~DoseRateCNNLib.region_weights.region_ids` (for
            :func:`region_mean_weighted_mse`; needs ``region_weights``).

    Random draws (slices, crops, flips) come from torch's global generator, which the training loop seeds per
    epoch, so a resumed run repeats them.

    Items: ``packs`` (3, 11, H, W) in network units (see the module docstring), zero beyond the volume's ends
    and in the in-plane padding to multiples of 16; ``target`` (2, 1, H, W): the Monte Carlo label of the true
    activity in network units and the body mask, with ``region_weights`` a third channel, the loss weights, and
    with ``region_index`` a fourth, the region index.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        split: str,
        levels: Sequence[int] | None = None,
        slice_step: int = 1,
        random_slices: int | None = None,
        crop: int | None = None,
        flips: bool = False,
        max_cases: int | None = None,
        region_weights: bool = False,
        region_index: bool = False,
    ) -> None:
        if region_index and not region_weights:
            raise ValueError("region_index: the region-mean loss needs the region weights too (region_weights=True)")
        if split not in SPLITS:
            raise ValueError(f"split: unknown {split!r}; choose one of {', '.join(SPLITS)}")
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        n_levels = len(self.manifest["settings"]["count_levels"])
        self.levels = list(range(n_levels)) if levels is None else [int(level) for level in levels]
        if not self.levels or not all(0 <= level < n_levels for level in self.levels):
            raise ValueError(f"levels: expected indices in [0, {n_levels}), got {levels}")
        self.cases = [case for case in self.manifest["cases"] if case["split"] == split][:max_cases]
        if not self.cases:
            raise ValueError(f"split: the {split!r} split of {self.folder} is empty; simulate more cases (--n)")
        names = ["density", "labels", "mc", *(f"{kind}_{i}" for i in self.levels for kind in ("spect", "vdk"))]
        self.arrays = [load_case(self.folder, case, names) for case in self.cases]
        spacing = float(self.manifest["settings"]["dose_spacing_mm"])
        voxel_ml = spacing**3 / 1000.0
        self.totals = [
            {level: total_activity_MBq(arrays[f"spect_{level}"], voxel_ml) for level in self.levels}
            for arrays in self.arrays
        ]
        ids = (
            [region_ids(arrays["labels"], arrays["record"]["label_names"]) for arrays in self.arrays]
            if region_weights
            else None
        )
        self.weights = (
            [
                region_weights_of(case_ids, arrays["mc"], [arrays[f"vdk_{level}"] for level in self.levels])
                for case_ids, arrays in zip(ids, self.arrays, strict=True)
            ]
            if region_weights
            else None
        )
        self.region_index = ids if region_index else None
        if crop is not None and (crop < UNET_DIVISOR or crop % UNET_DIVISOR):
            raise ValueError(f"crop: expected a multiple of {UNET_DIVISOR}, got {crop}")
        depth = self.arrays[0]["mc"].shape[0]
        slices = [None] * random_slices if random_slices else list(range(0, depth, slice_step))
        self.items = [(index, level, z) for index in range(len(self.arrays)) for level in self.levels for z in slices]
        self.crop, self.flips = crop, bool(flips)

    def __len__(self) -> int:
        return len(self.items)

    def _pack(self, volume: np.ndarray, z: int) -> np.ndarray:
        depth = volume.shape[0]
        low, high = z - HALF_PACK, z + HALF_PACK + 1
        pack = np.zeros((PACK_SLICES, *volume.shape[1:]), dtype=np.float32)
        pack[max(0, -low) : PACK_SLICES - max(0, high - depth)] = volume[max(0, low) : min(depth, high)]
        return pack

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        case, level, z = self.items[index]
        arrays, total = self.arrays[case], self.totals[case][level]
        if z is None:
            z = int(torch.randint(0, arrays["mc"].shape[0], ()).item())
        packs = np.stack(
            [
                self._pack(arrays[f"spect_{level}"], z) * (ACTIVITY_SCALE / total),
                self._pack(arrays["density"], z),
                self._pack(arrays[f"vdk_{level}"], z) * (DOSE_RATE_SCALE / total),
            ]
        )
        channels = [
            np.asarray(arrays["mc"][z : z + 1]) * (DOSE_RATE_SCALE / total),
            np.asarray(arrays["labels"][z : z + 1]) > 0,
        ]
        if self.weights is not None:
            channels.append(self.weights[case][z : z + 1])
        if self.region_index is not None:
            channels.append(self.region_index[case][z : z + 1])
        target = np.stack(channels).astype(np.float32)
        height, width = _padded(packs.shape[-2:])
        pad = ((0, 0), (0, 0), (0, height - packs.shape[-2]), (0, width - packs.shape[-1]))
        packs, target = torch.from_numpy(np.pad(packs, pad)), torch.from_numpy(np.pad(target, pad))
        if self.crop is not None and self.crop < max(height, width):
            y = int(torch.randint(0, max(1, height - self.crop + 1), ()).item())
            x = int(torch.randint(0, max(1, width - self.crop + 1), ()).item())
            packs, target = (
                packs[..., y : y + self.crop, x : x + self.crop],
                target[..., y : y + self.crop, x : x + self.crop],
            )
        if self.flips:
            dims = [dim for dim in (1, 2, 3) if torch.randint(0, 2, ()).item()]
            if dims:
                packs = packs.flip(dims)
                target = target.flip([dim for dim in dims if dim != 1])
        return packs, target
