"""PlanarTo3D's diffusion path through its commands and the panel's logic: ``planar-to-3d --method diffusion``
(refused clearly without a prior; with one, the mean and the uncertainty map with their provenance),
``train planar3d-diffusion``, ``evaluate-planar --diffusion-model`` and the logic on real MRML. The priors are
tiny: created untrained here, or trained for one epoch on one virtual patient."""

from __future__ import annotations

import argparse
import csv
import json

import numpy as np
import pytest
import slicer
import torch

from DosimetryCore import io
from DosimetryCore.cli import main as cli
from DosimetryCore.core.volume import array_from_image
from DosimetryCore.io import mrml
from DosimetryCore.learning import models
from PlanarTo3DLib import cli as planar_cli
from PlanarTo3DLib import logic
from PlanarTo3DLib.diffusion import SlicePrior

PRIOR = "planar3d-diffusion-test"


@pytest.fixture(scope="module")
def prior_dir(case):
    folder, _, _ = case
    torch.manual_seed(0)
    prior = SlicePrior((8, 16), 1, ct_conditioning=True)
    fields = {"architecture": prior.config, "training_data": {}, "training_command": "", "hardware": "",
              "wall_time_s": 0.0, "epochs": 0, "metrics": {}, "baselines": {}, "method": "untrained"}  # fmt: skip
    models.save_model(prior, PRIOR, fields, folder / "models", overwrite=True)
    return folder / "models"


def _planar_to_3d_argv(files, out, models_dir):
    return ["planar-to-3d", "--planar", str(files["planar"]), "--ct", str(files["ct"]), "--pet", str(files["pet"]),
            "--seg", str(files["seg"]), "--sensitivity-cps-per-mbq", "9.5", "--method", "diffusion",
            "--models-dir", str(models_dir), "--output", str(out / "activity.nrrd")]  # fmt: skip


def test_planar_to_3d_refuses_clearly_without_a_diffusion_prior(case, tmp_path, capsys):
    _, files, _ = case
    (tmp_path / "no-models").mkdir()
    argv = _planar_to_3d_argv(files, tmp_path / "out", tmp_path / "no-models")
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert "no diffusion prior" in error and "deepdosimetry train planar3d-diffusion" in error
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="SliceDiffusionUNet"):  # a ResUNet is no prior
        logic.load_method_model("diffusion", "planar3d-test", case[0] / "models")
    assert cli.main([*argv[:-2], "--method", "resunet", "--uncertainty", str(tmp_path / "sd.nrrd"),
                     "--output", str(tmp_path / "a.nrrd")]) == 2  # fmt: skip
    assert "--uncertainty" in capsys.readouterr().err


def test_planar_to_3d_diffusion_writes_mean_uncertainty_and_provenance(case, prior_dir, tmp_path, capsys):
    _, files, _ = case
    out = tmp_path / "out"
    argv = [*_planar_to_3d_argv(files, out, prior_dir), "--model", PRIOR, "--samples", "2", "--steps", "3",
            "--seed", "5", "--uncertainty", str(out / "sd.nrrd"), "--table", str(out / "organs.csv")]  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert "+-" in capsys.readouterr().out  # each organ's spread
    activity, sd = io.read_image(out / "activity.nrrd"), io.read_image(out / "sd.nrrd")
    ct = io.read_image(files["ct"])
    assert activity.GetSize() == sd.GetSize() == ct.GetSize()
    values, spread = array_from_image(activity), array_from_image(sd)
    assert values.min() >= 0 and values.sum() > 0 and spread.min() >= 0 and spread.max() > 0
    record = json.loads(activity.GetMetaData("deepdosimetry.provenance"))
    assert record["generic_model"] == PRIOR and len(record["generic_model_sha256"]) == 64
    assert record["samples"] == 2 and record["steps"] == 3 and record["seeds"] == [5, 6]
    assert record["planar_consistency_step"]["cg_steps"] >= 1 and 0 < record["planar_consistency"] < 1
    assert "diffusion" in record["method"] and "standard deviation" in sd.GetMetaData("deepdosimetry.provenance")
    assert "activity_sd_MBq" in (out / "organs.csv").read_text().splitlines()[0]
    assert record["start"] == "pure noise" and "body" in record["activity_support"]
    from_pet = tmp_path / "from_pet"
    argv = [*_planar_to_3d_argv(files, from_pet, prior_dir), "--model", PRIOR, "--samples", "1", "--steps", "10",
            "--start-from-pet", "300"]  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr().err
    record = json.loads(io.read_image(from_pet / "activity.nrrd").GetMetaData("deepdosimetry.provenance"))
    assert record["start"] == "pre-therapy PET noised to timestep 300"


def test_train_planar3d_diffusion_and_evaluate_with_diffusion_rows(case, prior_dir, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    planar_cli.register_train_diffusion(parser.add_subparsers())
    models_dir = tmp_path / "models"
    arguments = parser.parse_args(["planar3d-diffusion", "--out", str(tmp_path / "run"), "--patients", "1",
                                   "--variations", "0", "--val-patients", "1", "--epochs", "1", "--ct-conditioning",
                                   "--save-model", "prior-tiny", "--models-dir", str(models_dir)])  # fmt: skip
    assert arguments.handler(arguments) == 0
    card = models.read_card("prior-tiny", models_dir)
    assert card["architecture"]["architecture"] == "SliceDiffusionUNet" and card["architecture"]["ct_conditioning"]
    assert card["training_data"]["train_slices"] == 64 and (tmp_path / "run" / "loss_curve.png").is_file()
    assert "small CPU model" in card["departures_from_the_paper"][0]
    table = tmp_path / "eval" / "planar.csv"
    argv = ["evaluate-planar", "--model", "planar3d-test", "--diffusion-model", PRIOR, "--models-dir",
            str(prior_dir), "--patients", "1", "--variations", "2", "--epochs", "1", "--samples", "2", "--steps", "2",
            "--output", str(table)]  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr().err
    with table.open() as stream:
        means = {row["method"]: row for row in csv.DictReader(stream)}
    assert {"diffusion generic", "diffusion patient-specific", "ResUNet generic", "conjugate view"} <= set(means)
    for method in ("diffusion generic", "diffusion patient-specific"):
        assert 0 < float(means[method]["mae_norm"]) and 0 < float(means[method]["planar_consistency"]) < 1
        assert float(means[method]["wall_time_s"]) > 0


def test_logic_trains_a_patient_prior_and_reconstructs_into_an_uncertainty_node(scene, case, prior_dir, tmp_path):
    _, files, _ = case
    anterior, posterior, _ = logic.import_planar(scene, [str(files["planar"])])
    ct = mrml.add_volume_node(scene, io.read_image(files["ct"]), "CT")
    pet = mrml.add_volume_node(scene, io.read_image(files["pet"]), "PET")
    labels = io.read_image(files["seg"])
    from DosimetryCore.io.labels import label_names

    seg = mrml.add_segmentation_node(scene, labels, label_names(labels), "organs")
    before = slicer.util.arrayFromVolume(pet).copy()
    folder = logic.train_patient_model(anterior, posterior, ct, pet, seg, tmp_path / "patient", method="diffusion",
                                       model_name=PRIOR, models_dir=prior_dir, variations=2, epochs=1)  # fmt: skip
    card = models.read_card(logic.PATIENT_MODEL, folder.parent)
    assert card["fine_tuned_from"]["generic_model"] == PRIOR and "diffusion" in card["method"]
    volume, table, uncertainty = logic.reconstruct_volume(anterior, posterior, ct, pet, seg, 9.5, method="diffusion",
                                                          patient_model_dir=folder.parent, samples=2,
                                                          steps=2)  # fmt: skip
    spread = slicer.util.arrayFromVolume(uncertainty)
    assert spread.shape == slicer.util.arrayFromVolume(ct).shape and spread.max() > 0
    assert uncertainty.GetAttribute(mrml.UNIT_ATTRIBUTE) == "Bq/mL" and slicer.util.arrayFromVolume(volume).min() >= 0
    assert all(row["activity_sd_MBq"] >= 0 for row in mrml.rows_from_table_node(table))
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(pet), before)
    with pytest.raises(ValueError, match="activity output"):
        logic.reconstruct_volume(anterior, posterior, ct, pet, seg, 9.5, method="diffusion", model_name=PRIOR,
                                 models_dir=prior_dir, output_volume=volume, output_uncertainty=volume)  # fmt: skip
