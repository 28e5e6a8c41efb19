"""Shared PlanarTo3D test case: a virtual patient's planar DICOM, CT, pre-therapy PET and organs, and an untrained
small ResUNet installed as a model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from DosimetryCore import io
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
