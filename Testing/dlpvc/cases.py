"""Shared DL-PVC test cases: a tiny untrained model, a blurred sphere, a SPECT on an odd grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from DLPVCLib import constants
from DLPVCLib.iterative_yang import psf_blur
from DLPVCLib.networks import DLPVCModel
from DosimetryCore.core.volume import image_from_array
from DosimetryCore.learning import models

TINY_GRID = {"size": [16, 16, 16], "spacing_mm": [6.0, 6.0, 6.0]}
CARD_FIELDS = {
    "training_data": {"command": "test", "seeds": [0], "cases": 0},
    "training_command": "none (untrained test network)",
    "hardware": "CPU (test)",
    "wall_time_s": 0.0,
    "epochs": 0,
    "metrics": {},
    "baselines": {},
}


def save_tiny_model(
    folder: Path, name: str = constants.DEFAULT_MODEL, grid: dict | None = TINY_GRID, extra: dict | None = None
) -> Path:
    """An untrained two-level R2U-Net DL-PVC model in ``folder``, trained on ``grid``, with ``extra`` card fields."""
    torch.manual_seed(0)
    network = DLPVCModel("r2unet", channels=(2, 4)).eval()
    fields = {"architecture": network.config, **CARD_FIELDS, **({"grid": grid} if grid else {}), **(extra or {})}
    return models.save_model(network, name, fields, folder=folder)


def sphere_case(fwhm_mm: float = 12.0) -> tuple[sitk.Image, sitk.Image, np.ndarray]:
    """(SPECT = truth blurred by the PSF, labelmap of the sphere, sphere mask): 1000 Bq/mL in 50 Bq/mL."""
    z, y, x = np.meshgrid(*(4.0 * (np.arange(20) - 9.5),) * 3, indexing="ij")
    sphere = x**2 + y**2 + z**2 <= 12.0**2
    truth = image_from_array(np.where(sphere, 1000.0, 50.0).astype(np.float32), spacing=(4.0, 4.0, 4.0))
    blurred = sitk.GetArrayFromImage(psf_blur(truth, (fwhm_mm,) * 3)).astype(np.float32)
    return image_from_array(blurred, truth, unit="Bq/mL"), image_from_array(sphere.astype(np.uint8), truth), sphere


def odd_image() -> sitk.Image:
    """A SPECT on an anisotropic, rotated and flipped grid whose size is no multiple of anything."""
    values = 100.0 * np.random.default_rng(3).random((9, 11, 13))
    values[3:6, 4:7, 5:9] += 3000.0
    angle = np.deg2rad(30.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    direction = rotation @ np.diag([1.0, -1.0, 1.0])
    return image_from_array(
        values.astype(np.float32),
        spacing=(3.0, 4.5, 5.5),
        origin=(10.0, -20.0, 30.0),
        direction=direction.ravel().tolist(),
        unit="Bq/mL",
    )
