"""DLPVCLib.correction: IY-PVC wrapper, DL-PVC on any geometry with the total activity kept, model loading."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from dlpvc.cases import odd_image, save_tiny_model, sphere_case

from DLPVCLib import constants, correction
from DLPVCLib.networks import MIRRORS, DLPVCModel
from DosimetryCore.core.metadata import PROVENANCE_KEY, UNIT_KEY
from DosimetryCore.core.volume import image_from_array
from DosimetryCore.imaging.collimators import collimator_response
from DosimetryCore.learning import models

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture
def trained(tmp_path) -> correction.TrainedModel:
    save_tiny_model(tmp_path)
    return correction.load_dlpvc_model(folder=tmp_path, device="cpu")


def test_iy_recovers_a_blurred_sphere_and_keeps_the_total_only_with_the_true_psf():
    image, labelmap, sphere = sphere_case(fwhm_mm=12.0)
    before = sitk.GetArrayFromImage(image)
    reports = []
    exact = correction.correct_iy(image, labelmap, {1: "sphere"}, (12.0,) * 3, progress=lambda f, m: reports.append(f))
    corrected = sitk.GetArrayFromImage(exact)
    assert before[sphere].mean() < 0.7 * 1000.0
    assert corrected[sphere].mean() == pytest.approx(1000.0, rel=0.02)
    assert correction.total_activity_Bq(exact) == pytest.approx(correction.total_activity_Bq(image), rel=1e-3)
    assert reports[-1] == 1.0 and len(reports) == 11
    assert exact.GetMetaData(UNIT_KEY) == "Bq/mL"
    assert json.loads(exact.GetMetaData(PROVENANCE_KEY))["fwhm_mm"] == [12.0, 12.0, 12.0]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), before)
    # Iterative Yang does not conserve activity: with an overestimated PSF it over-corrects and adds activity.
    wide = correction.correct_iy(image, labelmap, {1: "sphere"}, (16.0,) * 3)
    assert sitk.GetArrayFromImage(wide)[sphere].mean() > 1.2 * 1000.0
    assert correction.total_activity_Bq(wide) > 1.02 * correction.total_activity_Bq(image)


def test_iy_refuses_a_labelmap_of_another_geometry_and_empty_names():
    image, labelmap, _ = sphere_case()
    shifted = sitk.Image(labelmap)
    shifted.SetOrigin((1.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="labelmap: geometry differs from image"):
        correction.correct_iy(image, shifted, {1: "sphere"}, (12.0,) * 3)
    with pytest.raises(ValueError, match="names: IY-PVC needs at least one segment"):
        correction.correct_iy(image, labelmap, {}, (12.0,) * 3)
    with pytest.raises(ValueError, match="fwhm_mm"):
        correction.correct_iy(image, labelmap, {1: "sphere"}, (12.0, 0.0, 12.0))


def bad_images() -> list[tuple[sitk.Image, str]]:
    values = np.full((8, 8, 8), 10.0, np.float32)
    nan, negative = values.copy(), values.copy()
    nan[1, 2, 3], negative[1, 2, 3] = np.nan, -1.0
    return [
        (image_from_array(nan), "NaN"),
        (image_from_array(negative), "negative"),
        (image_from_array(np.zeros_like(values)), "zero everywhere"),
        (image_from_array(values[0]), "expected a 3D image"),
        (image_from_array(values[:1]), "is 2D"),
        (image_from_array(values, unit="counts"), "expected Bq/mL"),
    ]


@pytest.mark.parametrize(("image", "message"), bad_images())
def test_both_methods_refuse_bad_spect(trained, image, message):
    labelmap = sitk.Image(image.GetSize(), sitk.sitkUInt8) + 1
    labelmap.CopyInformation(image)
    with pytest.raises(ValueError, match=message):
        correction.correct_dl(image, trained)
    with pytest.raises(ValueError, match=message):
        correction.correct_iy(image, labelmap, {1: "all"}, (10.0,) * 3)


def test_dl_returns_the_input_geometry_and_exactly_its_total_activity(trained):
    image = odd_image()
    before = sitk.GetArrayFromImage(image)
    reports = []
    output = correction.correct_dl(image, trained, progress=lambda f, m: reports.append((f, m)))
    assert output.GetSize() == image.GetSize()
    assert output.GetSpacing() == image.GetSpacing()
    assert output.GetOrigin() == image.GetOrigin()
    assert output.GetDirection() == image.GetDirection()
    assert correction.total_activity_Bq(output) == pytest.approx(correction.total_activity_Bq(image), rel=1e-6)
    assert sitk.GetArrayViewFromImage(output).min() >= 0
    assert output.GetMetaData(UNIT_KEY) == "Bq/mL"
    provenance = json.loads(output.GetMetaData(PROVENANCE_KEY))
    assert provenance["model_sha256"] == trained.card["weights_sha256"]
    assert provenance["model"] == models.model_provenance(trained.card)
    assert provenance["grid"]["size"] == [16, 16, 16] and provenance["grid"]["spacing_mm"] == [6.0, 6.0, 6.0]
    assert provenance["device"] == "cpu"
    assert reports[0][0] == 0.0 and reports[-1][0] == 1.0
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), before)


def test_dl_on_the_network_grid_is_the_network_itself(trained):
    values = 50.0 * np.random.default_rng(1).random((16, 16, 16)).astype(np.float32)
    values[5:9, 6:10, 4:8] += 2000.0
    image = image_from_array(values, spacing=(6.0, 6.0, 6.0), origin=(-45.0, -45.0, -45.0), unit="Bq/mL")
    x = torch.from_numpy(values)[None, None]
    with torch.no_grad():
        one_pass = trained.network(x)[0, 0].numpy()
        mirrors = [trained.network(x.flip(axes)).flip(axes)[0, 0].numpy() for axes in MIRRORS]
    for mirror_ensemble, expected in ((False, one_pass), (True, np.mean(mirrors, axis=0))):
        output = correction.correct_dl(image, trained, mirror_ensemble=mirror_ensemble)
        np.testing.assert_allclose(sitk.GetArrayFromImage(output), expected, rtol=1e-5, atol=1e-6 * expected.max())
        assert json.loads(output.GetMetaData(PROVENANCE_KEY))["inference"] == correction.INFERENCE[mirror_ensemble]
    assert np.abs(np.mean(mirrors, axis=0) - one_pass).max() > 1e-3 * one_pass.max()  # the mirrors do differ


class _Doubling(torch.nn.Module):
    """A stand-in network that doubles its input from slice 8 on (z index) and keeps the rest."""

    required_multiple = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        y[..., 8:, :, :] *= 2.0
        return y


def test_dl_on_a_finer_grid_multiplies_the_spect_by_the_correction_gain(trained):
    """A 4 mm SPECT through an 8 mm network grid: the output is the SPECT times the gain, keeping its own detail."""
    values = 50.0 + 10.0 * np.random.default_rng(2).random((31, 31, 31)).astype(np.float32)
    values[::2] += 40.0  # detail finer than the network grid: alternate slices
    spect = image_from_array(values, spacing=(4.0, 4.0, 4.0), origin=(-60.0, -60.0, -60.0), unit="Bq/mL")
    grid = correction.NetworkGrid((16, 16, 16), (8.0, 8.0, 8.0))
    doubling = correction.TrainedModel(_Doubling(), trained.card)
    corrected = correction.correct_dl(spect, doubling, grid=grid, device="cpu", mirror_ensemble=False)
    output = sitk.GetArrayFromImage(corrected)
    ratio = output / values
    # both grids span -60 to 60 mm; the gain is 1 up to z = -4 mm and 2 from z = 4 mm, linear between
    assert np.ptp(ratio[:14]) < 1e-5 and np.ptp(ratio[18:]) < 1e-5
    assert ratio[18:].mean() / ratio[:14].mean() == pytest.approx(2.0, rel=1e-5)
    assert output.sum() == pytest.approx(values.sum(), rel=1e-6)
    assert abs(output[0, 5, 5] - output[1, 5, 5]) > 0.5 * 40.0 * ratio[0, 5, 5]  # the slice-to-slice detail stays


def test_correction_gain_is_floored_in_cold_voxels():
    network_input = image_from_array(np.array([[[0.0, 0.5, 1000.0]]], np.float32))
    corrected = image_from_array(np.array([[[0.3, 0.5, 1500.0]]], np.float32))
    gain = sitk.GetArrayFromImage(correction.correction_gain(network_input, corrected))
    np.testing.assert_allclose(gain, [[[0.3, 0.5, 1.5]]], rtol=1e-6)  # floor: 1e-3 x 1000 = 1 Bq/mL


def test_dl_grid_comes_from_the_card_or_the_argument(tmp_path):
    save_tiny_model(tmp_path, "dlpvc-nogrid", grid=None)
    with pytest.raises(ValueError, match="its card has no 'grid'"):
        correction.load_dlpvc_model("dlpvc-nogrid", folder=tmp_path)
    network, card = models.load_model("dlpvc-nogrid", DLPVCModel.from_config, device="cpu", folder=tmp_path)
    trained = correction.TrainedModel(network, card)
    image = odd_image()
    output = correction.correct_dl(image, trained, grid=correction.NetworkGrid((12, 12, 12), (8.0, 8.0, 8.0)))
    assert json.loads(output.GetMetaData(PROVENANCE_KEY))["grid"]["size"] == [12, 12, 12]
    with pytest.raises(ValueError, match="multiple of 2"):
        correction.correct_dl(image, trained, grid=correction.NetworkGrid((15, 16, 16), (8.0, 8.0, 8.0)))


def test_dl_refuses_activity_outside_the_network_field_of_view(trained):
    values = np.full((8, 8, 40), 10.0, np.float32)  # 40 slices of 6 mm: 240 mm against the grid's 96 mm
    with pytest.raises(ValueError, match=r"% of its activity lies outside the DL-PVC network's field of view"):
        correction.correct_dl(image_from_array(values, spacing=(6.0, 6.0, 6.0), unit="Bq/mL"), trained)


def test_model_loading_is_hash_checked_and_a_missing_model_names_the_folder(tmp_path):
    folder = save_tiny_model(tmp_path)
    assert correction.load_dlpvc_model(folder=tmp_path).name == constants.DEFAULT_MODEL
    with pytest.raises(ValueError, match=rf"no model dlpvc-other in {tmp_path}; train one with `deepdosimetry train"):
        correction.load_dlpvc_model("dlpvc-other", folder=tmp_path)
    weights = folder / models.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="sha256 mismatch"):
        correction.load_dlpvc_model(folder=tmp_path)


def test_installed_models_are_the_dlpvc_ones(tmp_path):
    save_tiny_model(tmp_path, "dlpvc-r2unet")
    save_tiny_model(tmp_path, "doserate-cnn")
    assert correction.installed_models(tmp_path) == ["dlpvc-r2unet"]
    assert correction.installed_models(tmp_path / "missing") == []


def test_segment_rows_compare_before_and_after():
    image, labelmap, sphere = sphere_case()
    corrected = correction.correct_iy(image, labelmap, {1: "sphere"}, (12.0,) * 3)
    (row,) = correction.segment_rows(image, corrected, labelmap, {1: "sphere"})
    assert list(row) == ["segment", *correction.TABLE_UNITS]
    voxel_ml = 0.064
    assert row["volume_ml"] == pytest.approx(sphere.sum() * voxel_ml)
    assert row["mean_before_Bq_per_mL"] == pytest.approx(sitk.GetArrayFromImage(image)[sphere].mean(), rel=1e-6)
    assert row["mean_after_Bq_per_mL"] == pytest.approx(1000.0, rel=0.02)
    assert row["activity_after_MBq"] == pytest.approx(1000.0 * sphere.sum() * voxel_ml / 1e6, rel=0.02)


def test_default_fwhm_is_the_melp_system_resolution_and_the_panel_uses_it():
    expected = float(collimator_response("SIEMENS-MELP").fwhm_mm(constants.DEFAULT_SOURCE_DISTANCE_MM))
    assert constants.DEFAULT_FWHM_MM == pytest.approx(expected, abs=0.05)
    module = ast.parse((REPOSITORY / "DLPVC" / "DLPVC.py").read_text())
    imports = [node for node in module.body if isinstance(node, ast.ImportFrom)]
    imported = {(node.module, alias.name) for node in imports for alias in node.names}
    assert ("DLPVCLib.constants", "DEFAULT_FWHM_MM") in imported
