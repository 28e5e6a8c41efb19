"""Shared PlanarTo3D test case: a virtual patient's planar DICOM, CT, pre-therapy PET and organs, and an untrained
small ResUNet installed as a model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from DosimetryCore import io
from DosimetryCore.core.metadata import LABEL_NAMES_KEY
from DosimetryCore.core.volume import image_from_array, set_unit
from DosimetryCore.learning import models
from PlanarTo3DLib import data
from PlanarTo3DLib.datasets import virtual_patient
from PlanarTo3DLib.demo import CAMERA_PIXEL_MM, camera_images
from PlanarTo3DLib.evaluation import organ_labelmap
from PlanarTo3DLib.network import ResUNet3D

SPACING = (data.GRID_SPACING_MM,) * 3


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planar-patient")
    patient = virtual_patient(11, "PSMA")
    mu = data.mu_map(patient["hu"])
    anterior, posterior = camera_images(data.planar_images(patient["activity"], mu), seed=0)
    planar = io.write_planar_dicom(anterior, posterior, folder / "planar.dcm", (CAMERA_PIXEL_MM,) * 2, 600.0)
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
