"""The shipped generic PlanarTo3D model: its card, and on a fresh virtual patient it must beat the naive answer
(the measured counts spread uniformly through the body)."""

from __future__ import annotations

import numpy as np
import pytest

from DosimetryCore.learning import models
from PlanarTo3DLib import data
from PlanarTo3DLib.datasets import virtual_patient
from PlanarTo3DLib.evaluation import image_row
from PlanarTo3DLib.network import ResUNet3D
from PlanarTo3DLib.reconstruct import reconstruct, scaled_to_counts

NAME = "planar3d-resunet"


@pytest.fixture(scope="module")
def shipped():
    return models.load_model(NAME, ResUNet3D.from_config, "cpu")


def test_card_states_grid_data_and_departures(shipped):
    _, card = shipped
    assert card["grid"] == {"spacing_mm": data.GRID_SPACING_MM, "shape_zyx": list(data.GRID_SHAPE_ZYX)}
    assert card["training_data"]["patients"] >= 16 and card["departures_from_the_paper"]
    assert card["normalisation"].startswith("planar inputs")


@pytest.mark.parametrize("seed", [424242, 515151])
def test_beats_uniform_activity_on_a_fresh_virtual_patient(shipped, seed):
    model, _ = shipped
    patient = virtual_patient(seed)
    mu = data.mu_map(patient["hu"])
    measured = data.planar_images(patient["activity"], mu, seed=seed)
    body = patient["hu"] > -500
    estimate = reconstruct(model, measured, mu)
    uniform = scaled_to_counts(data.activity_share(body.astype(np.float32)), mu, measured)
    ours, naive = image_row(estimate, patient["activity"], body), image_row(uniform, patient["activity"], body)
    assert ours["mae_norm"] < naive["mae_norm"] and ours["ssim"] > naive["ssim"], (ours, naive)
