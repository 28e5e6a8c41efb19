"""deepdosimetry planar-to-3d: a virtual patient's planar DICOM, CT, PET and organs to 3D activity, with the
measured images placed on the CT's projection grid, a fine-tuned patient model and the conjugate view beside."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from DosimetryCore import io
from DosimetryCore.cli import main as cli
from DosimetryCore.core.metadata import LABEL_NAMES_KEY
from DosimetryCore.core.volume import image_from_array, set_unit
from DosimetryCore.learning import models
from PlanarTo3DLib import data
from PlanarTo3DLib.datasets import virtual_patient
from PlanarTo3DLib.evaluation import organ_labelmap
from PlanarTo3DLib.network import ResUNet3D

SPACING = (data.GRID_SPACING_MM,) * 3


def _measured(planar: np.ndarray, shift_mm=(9.0, -14.0)) -> list[np.ndarray]:
    """The grid's projections as a camera with 4.8 mm pixels, head at row 0, the patient a little shifted."""
    views = []
    for view in planar:
        image = sitk.GetImageFromArray(np.ascontiguousarray(view[::-1]) / data.GRID_SPACING_MM**2)
        image.SetSpacing((data.GRID_SPACING_MM,) * 2)
        image.SetOrigin(tuple(-(n - 1) / 2 * data.GRID_SPACING_MM for n in image.GetSize()))
        camera = sitk.Image([120, 136], sitk.sitkFloat32)
        camera.SetSpacing((4.8, 4.8))
        camera.SetOrigin(tuple(-(n - 1) / 2 * 4.8 for n in camera.GetSize()))
        moved = sitk.Resample(image, camera, sitk.TranslationTransform(2, shift_mm), sitk.sitkLinear, 0.0)
        views.append(np.random.default_rng(len(views)).poisson(sitk.GetArrayFromImage(moved) * 4.8**2))
    return views


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planar-patient")
    patient = virtual_patient(11, "PSMA")
    mu = data.mu_map(patient["hu"])
    anterior, posterior = _measured(data.planar_images(patient["activity"], mu))
    planar = io.write_planar_dicom(anterior, posterior, folder / "planar.dcm", (4.8, 4.8), 600.0)
    pet, _ = data.pre_therapy_pet(patient["activity"], patient["labels"], np.random.default_rng(3))
    organs, names = organ_labelmap(patient["labels"])
    seg = image_from_array(organs, spacing=SPACING)
    seg.SetMetaData(LABEL_NAMES_KEY, json.dumps({str(k): v for k, v in names.items()}))
    files = {
        "planar": planar,
        "ct": io.write_image(set_unit(image_from_array(patient["hu"], spacing=SPACING), "HU"), folder / "ct.nrrd"),
        "pet": io.write_image(set_unit(image_from_array(pet, spacing=SPACING), "Bq/mL"), folder / "pet.nrrd"),
        "seg": io.write_image(seg, folder / "seg.nrrd"),
    }
    torch.manual_seed(0)
    models.save_model(ResUNet3D(3, (4, 8, 16, 32)), "planar3d-test", {
        "architecture": ResUNet3D(3, (4, 8, 16, 32)).config, "training_data": {}, "training_command": "",
        "hardware": "", "wall_time_s": 0.0, "epochs": 0, "metrics": {}, "baselines": {}, "method": "untrained",
    }, folder / "models")  # fmt: skip
    return folder, files, patient


def test_activity_table_figure_and_patient_model(case, tmp_path, capsys):
    folder, files, patient = case
    out = tmp_path / "out"
    argv = ["planar-to-3d", "--planar", str(files["planar"]), "--ct", str(files["ct"]), "--pet", str(files["pet"]),
            "--seg", str(files["seg"]), "--sensitivity-cps-per-mbq", "9.5", "--model", "planar3d-test",
            "--models-dir", str(folder / "models"), "--fine-tune", str(out / "patient"), "--variations", "2",
            "--epochs", "1", "--output", str(out / "activity.nrrd"), "--table", str(out / "organs.csv"),
            "--figure", str(out / "mip.png")]  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "planar images placed: shift" in printed and "conjugate view" in printed
    activity = io.read_image(out / "activity.nrrd")
    record = json.loads(activity.GetMetaData("deepdosimetry.provenance"))
    assert record["alignment"]["correlation_after"] > 0.9
    assert record["alignment"]["translation_mm"] == pytest.approx([-9.0, 14.0], abs=2.0)
    assert record["patient_model_sha256"] and record["generic_model"] == "planar3d-test"
    header = (out / "organs.csv").read_text().splitlines()[0]
    assert "activity_MBq" in header and "conjugate_view_MBq" in header
    assert (out / "mip.png").stat().st_size > 1000
    assert models.read_card("patient-model", out / "patient")["fine_tuned_from"]["generic_model"] == "planar3d-test"


def test_bad_inputs_are_refused_before_anything_is_written(case, tmp_path, capsys):
    folder, files, patient = case
    base = ["planar-to-3d", "--planar", str(files["planar"]), "--ct", str(files["ct"]), "--sensitivity-cps-per-mbq",
            "9.5", "--model", "planar3d-test", "--models-dir", str(folder / "models"),
            "--output", str(tmp_path / "a.nrrd")]  # fmt: skip
    far_away = image_from_array(np.ones(data.GRID_SHAPE_ZYX, np.float32), spacing=SPACING, origin=(900.0, 0.0, 0.0))
    empty_pet = io.write_image(set_unit(far_away, "Bq/mL"), tmp_path / "far.nrrd")
    assert cli.main([*base, "--pet", str(empty_pet), "--seg", str(files["seg"])]) == 2
    assert "holds no activity on the CT's field" in capsys.readouterr().err
    far_seg = io.read_image(files["seg"])
    far_seg.SetOrigin((2000.0, 0.0, 0.0))
    far = io.write_image(far_seg, tmp_path / "far_seg.nrrd")
    assert cli.main([*base, "--pet", str(files["pet"]), "--seg", str(far)]) == 2
    assert "has no voxel on the CT's field" in capsys.readouterr().err
    assert not (tmp_path / "a.nrrd").exists()
