"""DLPVCLib.domain: a SPECT unlike the model's training data is flagged in the output's provenance, on the console
and in the panel's status line, and a SPECT like it is not."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from dlpvc.cases import save_tiny_model

from DLPVCLib import correction, domain, logic
from DosimetryCore.core import provenance
from DosimetryCore.core.volume import image_from_array
from DosimetryCore.io import mrml

CARD = {
    "name": "dlpvc-test",
    "training_domain": {"spacing_mm": [9.6, 9.6, 9.6], "total_activity_MBq": [300.0, 3000.0]},
}


def torso_spect(spacing_mm: float = 9.6, total_MBq: float = 1000.0, size: int = 32) -> sitk.Image:
    """A body-like SPECT: a warm ellipsoid with a hot sphere, cold air at every edge of the field."""
    centre = (size - 1) / 2.0
    z, y, x = np.meshgrid(*(np.arange(size) - centre,) * 3, indexing="ij")
    body = (x / (0.4 * size)) ** 2 + (y / (0.3 * size)) ** 2 + (z / (0.45 * size)) ** 2 <= 1.0
    values = np.where(body, 1.0, 0.0) + np.where(x**2 + y**2 + z**2 <= (0.1 * size) ** 2, 20.0, 0.0)
    voxel_ml = spacing_mm**3 / 1000.0
    values *= total_MBq * 1e6 / (values.sum() * voxel_ml)
    return image_from_array(values.astype(np.float32), spacing=(spacing_mm,) * 3, unit="Bq/mL")


def test_a_spect_like_the_training_data_has_no_warning():
    assert domain.domain_warnings(torso_spect(), CARD) == []
    assert domain.domain_warnings(torso_spect(spacing_mm=4.8, size=64), CARD) == []


@pytest.mark.parametrize("spacing_mm, size", [(3.0, 64), (24.0, 16)])
def test_voxels_far_finer_or_coarser_than_the_training_grid_are_flagged(spacing_mm, size):
    (warning,) = domain.domain_warnings(torso_spect(spacing_mm=spacing_mm, size=size), CARD)
    assert "outside the training domain of dlpvc-test" in warning and f"{spacing_mm:.3g}" in warning


@pytest.mark.parametrize("total_MBq", [50.0, 20000.0])
def test_a_total_activity_far_outside_the_trained_range_is_flagged(total_MBq):
    (warning,) = domain.domain_warnings(torso_spect(total_MBq=total_MBq), CARD)
    assert f"{total_MBq:.4g} MBq in the field" in warning and "300-3000 MBq" in warning


def test_activity_at_the_edge_of_the_field_means_the_body_is_not_covered():
    spect = torso_spect()
    values = sitk.GetArrayFromImage(spect)
    values[:, :, :3] = values.max()
    values *= sitk.GetArrayViewFromImage(spect).sum() / values.sum()
    truncated = image_from_array(values, spacing=(9.6,) * 3, unit="Bq/mL")
    (warning,) = domain.domain_warnings(truncated, CARD)
    assert "does not cover the body" in warning and "100 %" in warning


def test_a_card_without_a_training_domain_gives_it_from_its_grid_and_simulation_command():
    card = {
        "grid": {"size": [64] * 3, "spacing_mm": [9.6] * 3},
        "training_data": {"simulated_with": "deepdosimetry simulate-pvc --n 320 --total-activity-mbq 300 3000"},
    }
    assert domain.training_domain(card) == {"spacing_mm": [9.6] * 3, "total_activity_MBq": [300.0, 3000.0]}
    assert domain.training_domain(CARD) == CARD["training_domain"]


def test_correct_dl_records_the_warnings_in_the_provenance(tmp_path):
    save_tiny_model(tmp_path, extra={"training_domain": {"spacing_mm": [6.0] * 3, "total_activity_MBq": [1, 10]}})
    model = correction.load_dlpvc_model(folder=tmp_path, device="cpu")
    in_domain = torso_spect(spacing_mm=6.0, total_MBq=5.0, size=16)
    assert provenance.read(correction.correct_dl(in_domain, model))["warnings"] == []
    coarse = torso_spect(spacing_mm=18.0, total_MBq=5.0, size=5)
    (warning,) = provenance.read(correction.correct_dl(coarse, model))["warnings"]
    assert "18 x 18 x 18 mm" in warning


def test_the_panel_logic_leaves_the_warnings_on_the_output_node(scene, tmp_path):
    save_tiny_model(tmp_path, extra={"training_domain": {"spacing_mm": [6.0] * 3, "total_activity_MBq": [1, 10]}})
    spect = mrml.add_volume_node(scene, torso_spect(spacing_mm=18.0, total_MBq=5.0, size=5), "SPECT")
    volume, _ = logic.correct_volume(spect, "dl", models_folder=tmp_path, device="cpu")
    warnings = mrml.warnings_of(volume)
    assert any("outside the training domain" in note for note in warnings)
    assert json.loads(volume.GetAttribute("DeepDosimetry.Provenance"))["warnings"] == warnings
