"""3D activity from measured anterior/posterior planar images with a trained ResUNet, its total tied to the counts.

The network gives the activity's distribution (its share per voxel, :mod:`PlanarTo3DLib.data`); the absolute
scale is the one for which the distribution, projected with the patient's CT attenuation, the collimator response
and the camera's sensitivity and frame time, has the measured total counts (anterior + posterior):

    A(v) = share(v) x counts_measured / counts_projected(share)

The planar consistency of a result is the relative L2 difference of its projections from the measured images.
"""

from __future__ import annotations

import numpy as np
import torch

from DosimetryCore.core.device import resolve_device

from .data import ACTIVITY_SCALE, DEFAULT_CAMERA, GRID_SPACING_MM, PlanarCamera, network_input, planar_images
from .network import ResUNet3D


def predicted_share(model: ResUNet3D, inputs: np.ndarray, device: str | None = None) -> np.ndarray:
    """The network's activity distribution (z, y, x), clamped at zero, for one input (C, z, y, x)."""
    torch_device = resolve_device(device)
    model = model.to(torch_device).eval()
    with torch.no_grad():
        output = model(torch.from_numpy(np.ascontiguousarray(inputs))[None].to(torch_device))[0, 0]
    return np.clip(output.cpu().numpy(), 0.0, None).astype(np.float32)


def scaled_to_counts(
    share: np.ndarray, mu: np.ndarray, measured: np.ndarray, camera: PlanarCamera = DEFAULT_CAMERA,
    spacing_mm: float = GRID_SPACING_MM,
) -> np.ndarray:  # fmt: skip
    """Activity (Bq/mL) of distribution ``share`` whose projection has the total counts of ``measured``."""
    if not share.sum() > 0:
        raise ValueError("the network predicts no activity anywhere; the planar images are unlike its training data")
    unit = share / np.float32(ACTIVITY_SCALE)
    projected = float(planar_images(unit, mu, camera, spacing_mm=spacing_mm).sum())
    return (unit * np.float32(float(measured.sum()) / projected)).astype(np.float32)


def planar_consistency(
    activity: np.ndarray, mu: np.ndarray, measured: np.ndarray, camera: PlanarCamera = DEFAULT_CAMERA,
    spacing_mm: float = GRID_SPACING_MM,
) -> float:  # fmt: skip
    """||projection of ``activity`` - measured|| / ||measured|| (both views; a fraction)."""
    projected = planar_images(activity, mu, camera, spacing_mm=spacing_mm)
    return float(np.linalg.norm(projected - measured) / np.linalg.norm(measured))


def reconstruct(
    model: ResUNet3D,
    measured: np.ndarray,
    mu: np.ndarray,
    pet: np.ndarray | None = None,
    camera: PlanarCamera = DEFAULT_CAMERA,
    device: str | None = None,
) -> np.ndarray:
    """Activity (Bq/mL, (z, y, x)) from measured planar counts (2, z, x) and the attenuation map (1/cm); ``pet``
    (any unit) when the model was trained conditioned on it."""
    if (pet is not None) != model.pet_conditioning:
        raise ValueError(f"pet: the model takes {model.in_channels} input channels; the PET is channel 4")
    share = predicted_share(model, network_input(measured, mu, pet), device)
    return scaled_to_counts(share, mu, measured, camera)
