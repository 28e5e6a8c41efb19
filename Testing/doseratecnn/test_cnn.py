"""DoseRateCNNLib.cnn and ``dose-rate --method cnn``: the CNN dose rate of any grid, its provenance and warnings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from DoseRateCNNLib.cli import dose_rate as dose_rate_cli
from DoseRateCNNLib.cnn import cnn_dose_rate, domain_warnings, load_dose_model
from DoseRateCNNLib.train import new_model
from DosimetryCore import dose, io
from DosimetryCore.cli import main as cli
from DosimetryCore.core.volume import array_from_image, resample_to_spacing
from DosimetryCore.learning import models
from DosimetryCore.phantoms import make_torso
from DosimetryCore.physics.ct import body_mask

CARD = {
    "architecture": {"architecture": "ResidualDoseNet", "pack_slices": 11},
    "training_data": {},
    "training_command": "test",
    "hardware": "test",
    "wall_time_s": 0.0,
    "epochs": 0,
    "metrics": {},
    "baselines": {},
    "training_domain": {"dose_spacing_mm": 9.28, "count_levels": [3.0e6, 1.9e7]},
}


@pytest.fixture(scope="module")
def torso():
    return make_torso((54, 39, 66), 9.28, seed=5, n_lesions=2, total_activity_MBq=3000.0)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    models.save_model(new_model(0), "dose-cnn-vdk", CARD, folder)
    return folder


def test_an_untrained_model_gives_the_vdk_on_the_model_grid(torso, models_dir):
    model, card = load_dose_model("dose-cnn-vdk", "cpu", models_dir)
    result = cnn_dose_rate(torso.activity, torso.ct, model, card, device="cpu")
    vdk = dose.compute_dose_rate(torso.activity, torso.ct, "vdk", density_scaling="total", device="cpu")
    np.testing.assert_allclose(array_from_image(result.image), array_from_image(vdk.image), rtol=1e-4, atol=1e-9)
    assert result.provenance["model_sha256"] == card["weights_sha256"] and result.provenance["warnings"] == []
    assert result.image.GetMetaData("deepdosimetry.unit") == "Gy/h"


def test_another_grid_is_resampled_there_and_back(torso, models_dir):
    model, card = load_dose_model("dose-cnn-vdk", "cpu", models_dir)
    finer = resample_to_spacing(torso.activity, (4.64, 4.64, 4.64))
    ct = dose.ct_on_activity_grid(torso.ct, finer)
    result = cnn_dose_rate(finer, ct, model, card, device="cpu")
    assert result.image.GetSize() == finer.GetSize() and result.provenance["network_grid_mm"] == 9.28
    coarse = dose.compute_dose_rate(torso.activity, torso.ct, "vdk", density_scaling="total", device="cpu")
    # dose rate is intensive: the mean over the same field agrees (edges of the body outline differ a little)
    mean_fine = array_from_image(result.image).mean(dtype=np.float64)
    assert mean_fine == pytest.approx(array_from_image(coarse.image).mean(dtype=np.float64), rel=0.05)
    body = body_mask(array_from_image(ct))
    assert np.all(array_from_image(result.image)[~body] == 0)


def test_a_grid_far_from_the_models_is_flagged():
    image = sitk.Image([4, 4, 4], sitk.sitkFloat32)
    image.SetSpacing((4.8, 4.8, 24.0))
    assert (
        domain_warnings(image, {"name": "m", **CARD})
        and "training domain" in domain_warnings(image, {"name": "m", **CARD})[0]
    )
    image.SetSpacing((9.6, 9.6, 9.6))
    assert domain_warnings(image, {"name": "m", **CARD}) == []


def test_a_count_level_outside_the_trained_ones_is_flagged(torso, models_dir):
    card = {"name": "m", "training_domain": {"dose_spacing_mm": 9.6, "count_levels": [1.9e7, 5.5e6, 3.0e6]}}
    assert domain_warnings(torso.activity, card, 4.0e6) == []
    assert domain_warnings(torso.activity, card) == []  # not given: stated in the provenance, not guessed
    low = domain_warnings(torso.activity, card, 1.2e6)
    assert len(low) == 1 and "1.2e+06 counts" in low[0] and "3e+06 to 1.9e+07" in low[0]
    assert domain_warnings(torso.activity, card, 5.0e7)
    model, loaded = load_dose_model("dose-cnn-vdk", "cpu", models_dir)
    result = cnn_dose_rate(torso.activity, torso.ct, model, loaded, counts=1.0e6, device="cpu")
    assert any("1e+06 counts" in warning for warning in result.provenance["warnings"])
    assert result.provenance["count_level"] == "1e+06 total counts (given)"
    with pytest.raises(ValueError, match="counts: expected"):
        cnn_dose_rate(torso.activity, torso.ct, model, loaded, counts=0.0, device="cpu")


def test_the_cli_writes_the_cnn_dose_rate_with_its_model(torso, models_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        cli, "_discovered_registrations",
        lambda group: [("dose-rate", dose_rate_cli.register)] if group == cli.ENTRY_POINT_GROUP else [],
    )  # fmt: skip
    paths = {name: io.write_image(image, tmp_path / f"{name}.nrrd") for name, image in
             (("activity", torso.activity), ("ct", torso.ct), ("labels", torso.labels))}  # fmt: skip
    argv = ["dose-rate", "--activity", str(paths["activity"]), "--ct", str(paths["ct"]), "--method", "cnn",
            "--model", "dose-cnn-vdk", "--models-dir", str(models_dir), "--seg", str(paths["labels"]),
            "--table", str(tmp_path / "t.csv"), "--output", str(tmp_path / "d.nrrd")]  # fmt: skip
    assert cli.main(argv) == 0
    record = json.loads(io.read_image(tmp_path / "d.nrrd").GetMetaData("deepdosimetry.provenance"))
    assert record["method"] == "cnn" and record["model_name"] == "dose-cnn-vdk"
    assert "mass_g" in (tmp_path / "t.csv").read_text().splitlines()[0]
    assert cli.main([*argv[:5], "--method", "vdk", "--model", "x", "--output", str(tmp_path / "e.nrrd")]) == 2
    assert "--model: not used by --method vdk" in capsys.readouterr().err
    assert cli.main([*argv[:-2], "--counts", "1e6", "--output", str(tmp_path / "c.nrrd")]) == 0
    assert "WARNING: outside the model's training domain: a SPECT of 1e+06 counts" in capsys.readouterr().out
    assert cli.main([*argv[:5], "--method", "vdk", "--counts", "1e6", "--output", str(tmp_path / "e.nrrd")]) == 2
    assert "--counts: not used by --method vdk" in capsys.readouterr().err
    missing = [*argv[:7], "--model", "nope", "--models-dir", str(models_dir), "--output", str(tmp_path / "n.nrrd")]
    assert cli.main(missing) == 2 and not (tmp_path / "n.nrrd").exists()
