"""DoseRateCNNLib: the simulate-dose folder, the slice-pack training data, training and the held-out evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from DoseRateCNNLib import dataset, evaluation
from DoseRateCNNLib.cli import datasets as dataset_cli
from DoseRateCNNLib.cli import training as training_cli
from DoseRateCNNLib.data import DoseCaseSettings
from DoseRateCNNLib.network import PACK_SLICES
from DoseRateCNNLib.train import card_fields, new_model, train_dose_cnn
from DoseRateCNNLib.training_data import (
    ACTIVITY_SCALE,
    DOSE_RATE_SCALE,
    DoseSliceDataset,
    PackedDoseNet,
    body_weighted_mse,
    total_activity_MBq,
)
from DosimetryCore.cli import main as cli
from DosimetryCore.learning import models

TINY = DoseCaseSettings(
    dose_spacing_mm=16.0, spect_spacing_mm=16.0, count_levels=(1.9e7, 3.0e6), iterations=2, subsets=4, views=24,
    photon_histories=20_000, batches=2, mc_on_spect=True,
)  # fmt: skip
SEED, N, FRACTIONS = 4, 3, (0.34, 0.33, 0.33)  # splits: train, test, val
VOXEL_ML = 16.0**3 / 1000.0


def run_cli(monkeypatch, argv: list[str]) -> int:
    """``deepdosimetry`` with this package's commands registered as their entry points will be."""
    commands = [
        ("simulate-dose", dataset_cli.register_simulate_dose),
        ("evaluate-dose", training_cli.register_evaluate),
    ]
    training = [("dose-cnn", training_cli.register_train)]
    monkeypatch.setattr(
        cli,
        "_discovered_registrations",
        lambda group: commands if group == cli.ENTRY_POINT_GROUP else training,
    )
    return cli.main(argv)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("dose") / "data"
    dataset.write_dose_dataset(out, N, SEED, TINY, split_fractions=FRACTIONS, device="cpu")
    return out


def test_manifest_splits_and_resume(folder):
    manifest = dataset.read_manifest(folder)
    assert [case["split"] for case in manifest["cases"]] == ["train", "test", "val"]
    assert dataset.settings_of(manifest) == TINY
    assert set(manifest["arrays"]) >= {"mc", "spect_1", "vdk_1", "mcspect_1"}
    for case in manifest["cases"]:
        record = json.loads((folder / case["id"] / "case.json").read_text())
        assert record["seed"] == case["seed"] and max(record["mc_mean_relative_uncertainty"].values()) < 0.05
    stamp = (folder / "case_00000" / "mc.npy").stat().st_mtime_ns
    dataset.write_dose_dataset(folder, N, SEED, TINY, split_fractions=FRACTIONS, device="cpu")
    assert (folder / "case_00000" / "mc.npy").stat().st_mtime_ns == stamp  # complete cases are kept
    with pytest.raises(ValueError, match="holds another dataset"):
        dataset.write_dose_dataset(folder, N, SEED + 1, TINY, split_fractions=FRACTIONS, device="cpu")


def test_packs_are_the_neighbouring_slices_in_network_units(folder):
    data = DoseSliceDataset(folder, "train")
    arrays = dataset.load_case(folder, data.cases[0], dataset.read_manifest(folder)["arrays"])
    depth, height, width = arrays["mc"].shape
    assert len(data) == 2 * depth
    total = total_activity_MBq(arrays["spect_1"], VOXEL_ML)
    packs, target = data[depth + 0]  # level 1, first slice: 5 zero slices above it
    assert packs.shape == (3, PACK_SLICES, 32, 32) and target.shape == (2, 1, 32, 32)
    assert torch.all(packs[:, :5] == 0)
    np.testing.assert_allclose(packs[0, 5:, :height, :width], arrays["spect_1"][:6] * ACTIVITY_SCALE / total, rtol=1e-6)
    np.testing.assert_allclose(packs[1, 5:, :height, :width], arrays["density"][:6], rtol=1e-6)
    np.testing.assert_allclose(target[0, 0, :height, :width], arrays["mc"][0] * DOSE_RATE_SCALE / total, rtol=1e-6)
    assert set(np.unique(target[1].numpy())) <= {0.0, 1.0} and torch.all(target[:, :, height:] == 0)


def test_network_units_do_not_depend_on_the_activity(folder):
    data = DoseSliceDataset(folder, "train", levels=[0])
    middle = data.arrays[0]["mc"].shape[0] // 2
    packs, target = data[middle]
    data.arrays[0] = {
        key: (value * 3.0 if key in ("spect_0", "vdk_0", "mc") else value) for key, value in data.arrays[0].items()
    }
    data.totals[0] = {0: data.totals[0][0] * 3.0}
    tripled_packs, tripled_target = data[middle]
    torch.testing.assert_close(tripled_packs, packs, rtol=1e-5, atol=0)
    torch.testing.assert_close(tripled_target, target, rtol=1e-5, atol=0)


def test_random_crops_and_flips_keep_inputs_and_target_together(folder):
    data = DoseSliceDataset(folder, "train", random_slices=3, crop=16, flips=True)
    torch.manual_seed(0)
    packs, target = data[0]
    assert len(data) == 2 * 3 and packs.shape == (3, PACK_SLICES, 16, 16) and target.shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match="multiple of 16"):
        DoseSliceDataset(folder, "train", crop=20)


def test_the_loss_weighs_body_and_outside():
    prediction = torch.zeros(1, 1, 1, 2, 2)
    target = torch.tensor([[1.0, 1.0], [0.0, 0.0]]).reshape(1, 1, 1, 2, 2)
    body = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).reshape(1, 1, 1, 2, 2)
    # inside: one voxel of squared error 1; outside: three voxels with one error of 1
    assert body_weighted_mse(prediction, torch.cat((target, body), dim=1)).item() == pytest.approx(0.7 + 0.3 / 3)


def test_the_region_loss_adds_weights_to_the_targets_and_trains(folder, tmp_path):
    data = DoseSliceDataset(folder, "train", region_weights=True)
    _, target = data[len(data) // 2]
    label, body, weights = target
    assert target.shape[0] == 3 and (weights[body == 0] == 0).all() and (weights[body == 1] > 0).all()
    run = train_dose_cnn(folder, tmp_path / "r", epochs=1, crop=None, slices_per_volume=2, loss="region")
    assert "VDK's mean squared error" in run.summary["training"]["loss"]
    assert any(line.startswith("loss:") for line in card_fields(run.summary)["departures_from_the_paper"])
    with pytest.raises(ValueError, match="unknown 'l1'"):
        train_dose_cnn(folder, tmp_path / "l", epochs=1, loss="l1")


def test_the_region_mean_loss_adds_the_region_index_and_trains(folder, tmp_path):
    data = DoseSliceDataset(folder, "train", region_weights=True, region_index=True)
    _, target = data[len(data) // 2]
    body, ids = target[1], target[3]
    assert target.shape[0] == 4 and (ids[body == 0] == 0).all() and (ids[body == 1] >= 1).all()
    assert torch.equal(ids, ids.round())
    with pytest.raises(ValueError, match="needs the region weights"):
        DoseSliceDataset(folder, "train", region_index=True)
    run = train_dose_cnn(folder, tmp_path / "m", epochs=1, crop=None, slices_per_volume=2, loss="region+mean")
    assert "each region's mean error" in run.summary["training"]["loss"]
    assert np.isfinite(run.result.history[0]["val_loss"])


def test_an_untrained_model_outputs_the_vdk():
    packs = torch.rand(2, 3, PACK_SLICES, 16, 16)
    torch.testing.assert_close(new_model(0).eval()(packs), packs[:, 2:3, 5:6])
    with pytest.raises(ValueError, match="ResidualDoseNet"):
        PackedDoseNet.from_config({"architecture": "UNet"})


def test_training_lowers_the_loss_and_resumes(folder, tmp_path):
    run = train_dose_cnn(folder, tmp_path / "ck", epochs=3, batch_size=4, crop=None, slices_per_volume=8, lr=1e-3)
    history = [entry["train_loss"] for entry in run.result.history]
    assert len(history) == 3 and history[-1] < history[0]
    assert run.loss_curve.is_file() and json.loads(run.summary_path.read_text())["data"]["train_cases"] == [
        "case_00000"
    ]
    again = train_dose_cnn(folder, tmp_path / "ck", epochs=3, batch_size=4, crop=None, slices_per_volume=8, resume=True)
    assert [entry["train_loss"] for entry in again.result.history] == history


def test_fine_tuning_starts_from_an_installed_model_and_its_card_keeps_the_chain(folder, tmp_path, monkeypatch):
    registry = tmp_path / "models"
    base = ["train", "dose-cnn", "--data", str(folder), "--crop", "0", "--slices-per-volume", "2", "--epochs", "1",
            "--models-dir", str(registry)]  # fmt: skip
    assert run_cli(monkeypatch, [*base, "--out", str(tmp_path / "a"), "--save-model", "dose-base"]) == 0
    base_model, base_card = models.load_model("dose-base", PackedDoseNet.from_config, "cpu", registry)
    tuned = train_dose_cnn(folder, tmp_path / "b", epochs=1, crop=None, slices_per_volume=2, lr=1e-12,
                           init_model="dose-base", models_dir=registry)  # fmt: skip
    tuned_weights = dict(tuned.model.named_parameters())
    for key, value in base_model.named_parameters():  # the weights; batch-norm statistics move with the data
        torch.testing.assert_close(tuned_weights[key], value, msg=key)
    fields = card_fields(tuned.summary)
    assert fields["initialised_from"]["weights_sha256"] == base_card["weights_sha256"]
    assert fields["total_epochs"] == 2 and "the weights of model dose-base" in fields["training"]["initial_output"]
    with pytest.raises(ValueError, match="model 'absent': no folder"):
        train_dose_cnn(folder, tmp_path / "c", epochs=1, init_model="absent", models_dir=registry)


def test_region_errors_are_the_papers_metrics():
    truth = np.array([1.0, 2.0, 3.0, 0.0])
    estimate = np.array([1.5, 2.5, 2.0, 9.0])
    mask = np.array([True, True, True, False])
    mde, nrmse = evaluation.region_errors(estimate, truth, mask)
    assert mde == pytest.approx(0.0)  # means 2.0 and 2.0
    assert nrmse == pytest.approx(np.sqrt((0.25 + 0.25 + 1.0) / 3) / 2.0 * 100)


def test_regions_split_lesions_and_find_the_lung_adjacent_ones():
    labels = np.zeros((1, 6, 12), np.uint8)
    labels[0, :, :4] = 1  # lung
    labels[0, 1:3, 4:6] = 3  # lesion touching the lung
    labels[0, 1:3, 8:10] = 3  # lesion away from it
    labels[0, 4:6, 6:12] = 2  # liver
    names = {"1": "lung_left", "2": "liver", "3": "lesion_liver"}
    masks = evaluation.region_masks(labels, names)
    assert len(masks["lesions"]) == 2 and len(masks["lung-adjacent lesions"]) == 1
    assert masks["lung-adjacent lesions"][0][0, 1, 4] and masks["liver"][0].sum() == 12 + 8
    assert masks["spleen"] == []


def test_evaluate_dose_writes_the_table_and_leaves_out_mc_on_a_set_without_it(folder, tmp_path, monkeypatch):
    out = tmp_path / "ck"
    assert run_cli(monkeypatch, ["train", "dose-cnn", "--data", str(folder), "--out", str(out), "--epochs", "1",
                                 "--crop", "0", "--slices-per-volume", "2", "--save-model", "dose-cnn-tiny",
                                 "--models-dir", str(tmp_path / "models")]) == 0  # fmt: skip
    table = tmp_path / "eval" / "table.csv"
    argv = [
        "evaluate-dose",
        "--data",
        str(folder),
        "--model",
        "dose-cnn-tiny",
        "--models-dir",
        str(tmp_path / "models"),
    ]
    assert run_cli(monkeypatch, [*argv, "--output", str(table), "--update-card"]) == 0
    text = table.with_suffix(".md").read_text()
    assert "| all | liver | CNN |" in text and "| 1.9e+07 | spleen | VDK |" in text
    card = json.loads((tmp_path / "models" / "dose-cnn-tiny" / "model_card.json").read_text())
    assert "liver NRMSE_percent" in card["metrics"] and "VDK on SPECT" in card["baselines"]
    assert card["training_domain"]["count_levels"] == [1.9e7, 3.0e6]
    plain = tmp_path / "plain"
    plain.mkdir()
    manifest = dataset.read_manifest(folder)
    manifest["settings"]["mc_on_spect"] = False
    (plain / "manifest.json").write_text(json.dumps(manifest))
    for case in manifest["cases"]:
        (plain / case["id"]).symlink_to(folder / case["id"])
    plain_argv = ["evaluate-dose", "--data", str(plain), "--model", "dose-cnn-tiny", "--models-dir",
                  str(tmp_path / "models"), "--output", str(tmp_path / "x.csv")]  # fmt: skip
    assert run_cli(monkeypatch, [*plain_argv, "--update-card"]) == 2  # the card's table needs the MC baseline
    assert not (tmp_path / "x.csv").exists()
    assert run_cli(monkeypatch, plain_argv) == 0
    text = (tmp_path / "x.md").read_text()
    assert "| all | liver | CNN |" in text and "| all | liver | VDK |" in text and "MC on SPECT" not in text
