"""DLPVCLib.evaluation: seed 003 Table 1 metrics for no PVC, IY-PVC and DL-PVC on held-out cases."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk

from DLPVCLib import cli as dlpvc_cli
from DLPVCLib import dataset, evaluation
from DLPVCLib.iterative_yang import psf_blur
from DLPVCLib.networks import DLPVCModel
from DosimetryCore.cli import main as cli
from DosimetryCore.imaging.collimators import collimator_response
from DosimetryCore.learning import models
from DosimetryCore.learning.training import seed_everything, train

FAST = replace(dataset.DEFAULT_ACQUISITION, views=12)
SEED, N = 3, 5  # splits: train, val, test, test, train


def run_cli(monkeypatch, argv: list[str]) -> int:
    """``deepdosimetry`` with ``evaluate-pvc`` registered as its entry point will be."""
    monkeypatch.setattr(
        cli, "_discovered_registrations",
        lambda group: [("evaluate-pvc", dlpvc_cli.register_evaluate_pvc)] if group == cli.ENTRY_POINT_GROUP else [],
    )
    return cli.main(argv)


def tiny_model() -> DLPVCModel:
    seed_everything(0)
    return DLPVCModel("r2unet", channels=[4, 8])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dlpvc") / "data"
    dataset.write_dataset(
        folder, N, SEED, size=32, spacing_mm=19.2, acquisition=FAST, reconstructions=dataset.RECONSTRUCTIONS,
        device="cpu",
    )  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def result(data):
    return evaluation.evaluate(tiny_model(), data, device="cpu")


def test_every_method_and_metric_is_finite_for_every_test_case(result):
    assert [row["method"] for row in result.table] == list(evaluation.METHODS)
    assert [(row["case"], row["method"]) for row in result.cases] == [
        (case, method) for case in ("case_00002", "case_00003") for method in evaluation.METHODS
    ]
    for row in result.table:
        assert row["n"] == 2
        for key in evaluation.METRICS:
            assert math.isfinite(row[f"{key}_mean"]) and math.isfinite(row[f"{key}_std"]), (row["method"], key)
    for row in result.cases:
        assert -1 <= row["ssim"] <= 1 and 0 <= row["vaa_percent"] <= 100 and row["nrmse_percent"] >= 0


def test_dl_pvc_keeps_the_total_activity_of_its_input(result):
    by_case = {(row["case"], row["method"]): row for row in result.cases}
    for case in ("case_00002", "case_00003"):
        assert by_case[case, "DL-PVC"]["ad_percent"] == pytest.approx(by_case[case, "None"]["ad_percent"], abs=1e-4)
    assert by_case["case_00002", "None"]["ad_percent"] != by_case["case_00002", "IY-PVC"]["ad_percent"]


def test_uncorrected_metrics_follow_seed_003_definitions(data, result):
    test = dataset.PVCDataset(data, "test")
    truth = sitk.GetArrayFromImage(test.image(0, "truth")).astype(np.float64)
    recon = sitk.GetArrayFromImage(test.image(0, "osem_rr_noisy")).astype(np.float64)
    inside = truth > 0
    none = next(row for row in result.cases if row["case"] == "case_00002" and row["method"] == "None")
    rmse = np.sqrt(np.mean((recon[inside] - truth[inside]) ** 2))
    assert none["nrmse_percent"] == pytest.approx(100 * rmse / (truth[inside].max() - truth[inside].min()))
    assert none["vaa_percent"] == pytest.approx(100 * np.mean(np.abs(recon - truth)[inside] < 0.05 * truth[inside]))
    assert none["ad_percent"] == pytest.approx(100 * (recon.sum() / truth.sum() - 1))
    assert evaluation.case_metrics(truth, truth) == {
        "ssim": pytest.approx(1.0), "nrmse_percent": 0.0, "vaa_percent": 100.0, "ad_percent": 0.0
    }


def test_iy_fwhm_is_calibrated_on_validation_cases_only(result):
    settings = result.settings
    assert settings["iy_fwhm_source"] == "matched filter of osem_rr_noise_free on 1 validation case(s)"
    assert settings["iy_fwhm_mm"] == pytest.approx(settings["iy_fwhm_per_calibration_case_mm"][0])
    assert 5 < settings["iy_fwhm_mm"] < settings["system_fwhm_at_radius_mm"]
    assert settings["split"] == "test" and settings["n_cases"] == 2 and settings["iy_iterations"] == 10
    assert settings["simulated_with"] == (
        f"deepdosimetry simulate-pvc --n {N} --seed {SEED} --size 32 --spacing-mm 19.2 --views 12 "
        "--total-activity-mbq 300 3000 --reconstructions " + " ".join(dataset.RECONSTRUCTIONS)
    )


def test_matched_filter_finds_a_known_blur_and_the_system_fwhm():
    truth = sitk.GetImageFromArray(np.zeros((24, 24, 24), np.float32))
    truth.SetSpacing((8.0, 8.0, 8.0))
    truth[8:14, 10:16, 9:17] = 1000.0
    assert evaluation.matched_filter_fwhm(truth, psf_blur(truth, (30.0,) * 3), 60.0) == pytest.approx(30.0, abs=0.2)
    response = collimator_response("SIEMENS-MELP")
    assert evaluation.system_fwhm_mm(dataset.DEFAULT_ACQUISITION) == pytest.approx(float(response.fwhm_mm(280.0)))


def test_write_table_gives_csv_markdown_cases_and_settings(result, tmp_path):
    paths = evaluation.write_table(result, tmp_path / "table.csv", title="tiny")
    assert [p.name for p in paths] == ["table.csv", "table.md", "table_cases.csv", "table.json"]
    with open(paths[0], newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["method"] for row in rows] == ["None", "IY-PVC", "DL-PVC"]
    assert float(rows[2]["ad_percent_mean"]) == pytest.approx(result.table[2]["ad_percent_mean"])
    markdown = paths[1].read_text()
    assert "| PVC method | SSIM | NRMSE (%) | VAA (%) | AD (%) |" in markdown and "| DL-PVC | " in markdown
    assert json.loads(paths[3].read_text())["manifest_sha256"] == dataset.manifest_sha256(result.settings["data"])
    with pytest.raises(ValueError, match="must end in .csv"):
        evaluation.write_table(result, tmp_path / "table.txt")


def test_evaluate_pvc_command_with_a_registry_model_updates_its_card(monkeypatch, data, tmp_path, capsys):
    registry = tmp_path / "models"
    fields = {field: {} for field in models.REQUIRED_CARD_FIELDS}
    fields |= {"architecture": tiny_model().config, "training_command": "test", "hardware": "cpu", "wall_time_s": 1.0,
               "epochs": 1, "input": "osem_rr_noisy"}
    models.save_model(tiny_model(), "dlpvc-tiny", fields, folder=registry)
    output = tmp_path / "eval" / "table.csv"
    arguments = ["evaluate-pvc", "--data", str(data), "--model", "dlpvc-tiny", "--models-dir", str(registry),
                 "--output", str(output), "--iy-fwhm-mm", "20", "--device", "cpu", "--update-card"]
    assert run_cli(monkeypatch, arguments) == 0
    assert "| IY-PVC |" in capsys.readouterr().out and output.is_file()
    card = models.read_card("dlpvc-tiny", registry)
    assert set(card["metrics"]) == set(evaluation.METRICS)
    assert set(card["baselines"]) == {"no PVC", "IY-PVC"}
    assert card["evaluation"]["iy_fwhm_source"] == "given" and card["evaluation"]["iy_fwhm_mm"] == 20.0
    assert "/" not in card["evaluation"]["data"]  # the folder name, not a machine path
    assert card["training_command"] == "test"
    models.load_model("dlpvc-tiny", DLPVCModel.from_config, device="cpu", folder=registry)  # still hash-valid


def test_evaluate_pvc_command_with_a_checkpoint(monkeypatch, data, tmp_path, capsys):
    model = tiny_model()
    pairs = dataset.PVCDataset(data, "train"), dataset.PVCDataset(data, "val")
    train(model, *pairs, lambda p, t: ((p - t) / t.max()).abs().mean(), epochs=1, batch_size=2, lr=1e-3, seed=0,
          device="cpu", checkpoint_dir=tmp_path / "run", model_config=model.config)
    output = tmp_path / "table.csv"
    arguments = ["evaluate-pvc", "--data", str(data), "--checkpoint", str(tmp_path / "run" / "best.pt"),
                 "--output", str(output), "--input", "osem_norr_noisy", "--device", "cpu"]
    assert run_cli(monkeypatch, arguments) == 0
    settings = json.loads(output.with_suffix(".json").read_text())
    assert settings["input"] == "osem_norr_noisy"
    assert settings["iy_fwhm_source"].startswith("matched filter of osem_norr_noise_free")
    assert run_cli(monkeypatch, [*arguments, "--update-card"]) == 2
    assert "update-card: needs --model" in capsys.readouterr().err


def test_bad_input_is_refused(data, tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        evaluation.evaluate(tiny_model(), tmp_path / "missing", device="cpu")
    folder = tmp_path / "only_train"
    dataset.write_dataset(folder, 1, SEED, size=32, spacing_mm=19.2, acquisition=FAST, split_fractions=(1, 0, 0),
                          device="cpu")
    with pytest.raises(ValueError, match="the 'test' split of .* is empty"):
        evaluation.evaluate(tiny_model(), folder, device="cpu")
    with pytest.raises(ValueError, match="the 'val' split of .* is empty"):
        evaluation.evaluate(tiny_model(), folder, "train", device="cpu")
    assert evaluation.evaluate(tiny_model(), folder, "train", iy_fwhm_mm=20.0, device="cpu").table[0]["n"] == 1
    with pytest.raises(ValueError, match="iy_fwhm_mm: expected a positive FWHM"):
        evaluation.evaluate(tiny_model(), data, iy_fwhm_mm=-1.0, device="cpu")


def test_a_torso_dataset_adds_recovery_coefficients_and_its_own_card_table(tmp_path):
    folder = tmp_path / "torso"
    dataset.write_dataset(folder, N, SEED, size=32, spacing_mm=19.2, acquisition=FAST, kind="torso", device="cpu")
    result = evaluation.evaluate(tiny_model(), folder, iy_fwhm_mm=20.0, device="cpu")
    assert result.settings["kind"] == "torso"
    for row in result.cases:
        assert {"RC liver", "RC spleen", "rc_error_organs", "rc_error"} <= set(row)
        organs = [row[key] for key in row if key.startswith("RC ")]
        assert row["rc_error_organs"] == pytest.approx(np.mean([abs(v - 1) for v in organs]))
        lesions = row["rc_error_lesions"]
        assert row["rc_error"] >= 0 and (math.isnan(lesions) or lesions >= 0)
    table = {row["method"]: row for row in result.table}
    assert table["None"]["RC liver_mean"] < 1.0  # spill-out lowers a hot organ's mean
    fields = evaluation.card_metrics(result)
    assert set(fields) == {"evaluation_torso"} and result.settings["spacing_mm"] == 19.2
    assert set(evaluation.card_metrics(result, training_spacing_mm=19.2)) == {"evaluation_torso"}
    assert set(evaluation.card_metrics(result, training_spacing_mm=9.6)) == {"evaluation_torso_19.2mm"}
    assert fields["evaluation_torso"]["metrics"]["rc_error"] == table["DL-PVC"]["rc_error_mean"]
    markdown = evaluation.write_table(result, tmp_path / "t.csv")[1].read_text()
    assert "| PVC method | RC liver |" in markdown and "rc_error_organs: mean |RC - 1|" in markdown
    registry = tmp_path / "models"
    card = {field: {} for field in models.REQUIRED_CARD_FIELDS}
    card |= {"architecture": tiny_model().config, "training_command": "test", "hardware": "cpu", "wall_time_s": 1.0,
             "epochs": 1, "input": "osem_rr_noisy"}
    models.save_model(tiny_model(), "dlpvc-torso", card | fields, folder=registry)
    text = (registry / "dlpvc-torso" / models.CARD_MARKDOWN).read_text()
    assert "## Held-out metrics: torso" in text and "| rc_error |" in text
