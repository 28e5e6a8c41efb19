"""DLPVCLib.train: the ``train dlpvc`` command, its outputs, the model card and bad input."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from learning.test_distributed_training import torchrun

from DLPVCLib import cli as dlpvc_cli
from DLPVCLib import dataset, train
from DLPVCLib.networks import DLPVCModel
from DosimetryCore.cli import main as cli
from DosimetryCore.learning import losses, models
from DosimetryCore.learning.training import BEST_CHECKPOINT, LATEST_CHECKPOINT, load_checkpoint

FAST = replace(dataset.DEFAULT_ACQUISITION, views=12)
SEED, N = 3, 5  # splits: train, val, test, test, train


def run_cli(monkeypatch, argv: list[str]) -> int:
    """``deepdosimetry`` with ``train dlpvc`` registered as its entry point will be."""
    monkeypatch.setattr(
        cli, "_discovered_registrations",
        lambda group: [("dlpvc", dlpvc_cli.register_train)] if group == cli.TRAINING_ENTRY_POINT_GROUP else [],
    )
    return cli.main(argv)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dlpvc") / "data"
    dataset.write_dataset(folder, N, SEED, size=32, spacing_mm=19.2, acquisition=FAST, device="cpu")
    return folder


def command(data, out, *extra: str) -> list[str]:
    return ["train", "dlpvc", "--data", str(data), "--out", str(out), "--channels", "4", "8", "--epochs", "2",
            "--device", "cpu", *extra]


def test_train_writes_checkpoints_loss_curve_summary_and_a_registry_model(monkeypatch, data, tmp_path, capsys):
    out, registry = tmp_path / "run", tmp_path / "models"
    assert run_cli(monkeypatch, command(data, out, "--save-model", "dlpvc-test", "--models-dir", str(registry))) == 0
    assert "trained 2 epoch(s)" in capsys.readouterr().out
    assert (out / LATEST_CHECKPOINT).is_file() and (out / BEST_CHECKPOINT).is_file()
    assert (out / train.LOSS_CURVE_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / train.SUMMARY_FILE).read_text())
    assert summary["model"]["config"] == {"arch": "r2unet", "channels": [4, 8], "norm": "INSTANCE"}
    assert summary["data"]["n_train"] == 2 and summary["data"]["n_val"] == 1
    assert summary["data"]["manifest_sha256"] == dataset.manifest_sha256(data)
    assert summary["data"]["input"] == "osem_rr_noisy"
    assert summary["training"]["optimiser"] == "Adam" and summary["training"]["loss"].startswith("l1")
    assert summary["result"]["epochs_run"] == 2 and len(summary["result"]["history"]) == 2
    for entry in summary["result"]["history"]:  # the SSIM of training and validation cases, every epoch
        assert 0.0 < entry["train_ssim"] <= 1.0 and 0.0 < entry["val_ssim"] <= 1.0
    assert summary["training"]["precision"] == "float32"
    assert summary["result"]["wall_time_s"] > 0 and summary["hardware"].startswith("cpu: ")
    assert "--epochs 2" in summary["command"] and "--save-model dlpvc-test" in summary["command"]

    model, card = models.load_model("dlpvc-test", DLPVCModel.from_config, device="cpu", folder=registry)
    best = load_checkpoint(out / BEST_CHECKPOINT)["model_state"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, best[key]), key
    assert card["architecture"] == summary["model"]["config"]
    assert card["training_data"]["manifest_sha256"] == dataset.manifest_sha256(data)
    assert card["training_data"]["simulated_with"].startswith(f"deepdosimetry simulate-pvc --n {N} --seed {SEED}")
    assert card["training_command"] == summary["command"] and card["epochs"] == 2
    assert card["grid"] == {"size": [32, 32, 32], "spacing_mm": [19.2, 19.2, 19.2]}
    assert card["input"] == "osem_rr_noisy" and card["metrics"] == {} and card["baselines"] == {}
    assert card["augmentation"] == summary["training"]["augmentation"] == "random mirroring along z, y and x"
    departures = card["departures_from_the_paper"]
    assert departures[0].startswith("network grid 32^3 voxels of 19.2 mm") and "3 simulated" in departures[1]
    assert any("trained on a CPU" in note for note in departures)

    again = run_cli(monkeypatch, command(data, tmp_path / "run2", "--save-model", "dlpvc-test", "--models-dir",
                                         str(registry)))
    assert again == 2 and "exists; pass --overwrite" in capsys.readouterr().err
    assert not (tmp_path / "run2").exists()  # refused before training


def test_batch_normalisation_on_request(monkeypatch, data, tmp_path):
    assert run_cli(monkeypatch, command(data, tmp_path / "run", "--norm", "batch", "--epochs", "1", "--no-flips")) == 0
    summary = json.loads((tmp_path / "run" / train.SUMMARY_FILE).read_text())
    assert summary["model"]["config"]["norm"] == "BATCH" and "--norm batch" in summary["command"]
    assert summary["training"]["augmentation"] == "none" and "--no-flips" in summary["command"]
    model = DLPVCModel.from_config(summary["model"]["config"])
    model.load_state_dict(load_checkpoint(tmp_path / "run" / BEST_CHECKPOINT)["model_state"])
    assert any(isinstance(layer, torch.nn.BatchNorm3d) for layer in model.modules())


def test_normalised_loss_is_scale_free():
    generator = torch.Generator().manual_seed(0)
    prediction, target = torch.rand(2, 1, 4, 4, 4, generator=generator), torch.rand(2, 1, 4, 4, 4, generator=generator)
    loss = train.normalised_loss("l1")
    expected = torch.stack([(prediction[i] - target[i]).abs().mean() / target[i].max() for i in range(2)]).mean()
    assert loss(prediction, target) == pytest.approx(float(expected), rel=1e-6)
    assert loss(5e5 * prediction, 5e5 * target) == pytest.approx(float(expected), rel=1e-5)
    assert train.normalised_loss("mse")(target, target) == 0
    with pytest.raises(ValueError, match="loss: unknown 'huber'"):
        train.normalised_loss("huber")


def test_l1_ssim_loss_adds_the_weighted_ssim_deficit_inside_the_active_region():
    generator = torch.Generator().manual_seed(1)
    target = torch.rand(2, 1, 12, 12, 12, generator=generator, dtype=torch.float64)
    target[:, :, :4] = 0.0
    prediction = target + 0.1 * torch.rand(2, 1, 12, 12, 12, generator=generator, dtype=torch.float64)
    scale = target.flatten(1).amax(1).view(-1, 1, 1, 1, 1)
    p, t = prediction / scale, target / scale
    similarity = losses.masked_ssim(p, t, t > 0, 1.0)
    expected = (p - t).abs().mean() + train.SSIM_LOSS_WEIGHT * (1 - similarity).mean()
    loss = train.normalised_loss("l1+ssim")
    assert loss(prediction, target).item() == pytest.approx(expected.item(), rel=1e-9)
    assert loss(1e6 * prediction, 1e6 * target).item() == pytest.approx(expected.item(), rel=1e-9)
    assert loss(target, target).item() == pytest.approx(0.0, abs=1e-12)


def test_fine_tuning_starts_from_an_installed_model_and_records_its_training(monkeypatch, data, tmp_path, capsys):
    registry = tmp_path / "models"
    base = ["--save-model", "dlpvc-base", "--models-dir", str(registry), "--epochs", "1"]
    assert run_cli(monkeypatch, command(data, tmp_path / "base", *base)) == 0
    base_model, base_card = models.load_model("dlpvc-base", DLPVCModel.from_config, "cpu", registry)

    fresh = DLPVCModel("r2unet", channels=[4, 8], norm="INSTANCE")
    record = train.initial_model(fresh, "dlpvc-base", registry)
    for key, value in base_model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    assert record["weights_sha256"] == base_card["weights_sha256"] and record["epochs"] == 1

    tuned = ["--save-model", "dlpvc-tuned", "--models-dir", str(registry), "--init-model", "dlpvc-base",
             "--loss", "l1+ssim"]
    assert run_cli(monkeypatch, command(data, tmp_path / "tuned", *tuned)) == 0
    _, card = models.load_model("dlpvc-tuned", DLPVCModel.from_config, "cpu", registry)
    assert card["initialised_from"]["name"] == "dlpvc-base"
    assert card["initialised_from"]["weights_sha256"] == base_card["weights_sha256"]
    assert card["initialised_from"]["training_command"] == base_card["training_command"]
    assert card["epochs"] == 2 and card["total_epochs"] == 3
    assert card["total_wall_time_s"] == pytest.approx(card["wall_time_s"] + base_card["wall_time_s"])
    assert card["loss"].startswith(f"l1 + {train.SSIM_LOSS_WEIGHT:g} x (1 - SSIM")
    assert "--init-model dlpvc-base" in card["training_command"] and "--loss l1+ssim" in card["training_command"]
    assert base_card["initialised_from"] is None and base_card["total_epochs"] == 1
    capsys.readouterr()

    other = ["--init-model", "dlpvc-base", "--models-dir", str(registry), "--channels", "4", "8", "16"]
    assert run_cli(monkeypatch, command(data, tmp_path / "other", *other)) == 2
    assert "init-model: dlpvc-base is" in capsys.readouterr().err
    missing = ["--init-model", "dlpvc-none", "--models-dir", str(registry)]
    assert run_cli(monkeypatch, command(data, tmp_path / "missing", *missing)) == 2
    assert "dlpvc-none" in capsys.readouterr().err
    assert not (tmp_path / "other").exists() and not (tmp_path / "missing").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"data": "/nonexistent/dlpvc-data"}, "is not a folder"),
        ({"arch": "vnet"}, "unknown network 'vnet'"),
        ({"input_key": "osem"}, "unknown reconstruction 'osem'"),
        ({"channels": [2, 2, 2, 2, 2, 2, 2]}, "grid is not a multiple of 64"),
        ({"norm": "layer"}, "norm: unknown 'layer'"),
        ({"arch": "attentionunet", "norm": "batch"}, "attentionunet has no normalisation option"),
    ],
)
def test_bad_input_is_refused_before_training(data, tmp_path, change, message):
    settings = {"data": data, "checkpoint_dir": tmp_path / "run", "channels": [4, 8], "epochs": 1, "device": "cpu"}
    with pytest.raises(ValueError, match=message):
        train.train_dlpvc(**(settings | change))
    assert not (tmp_path / "run").exists()


def test_several_datasets_train_together_and_the_summary_and_card_name_each(monkeypatch, data, tmp_path):
    warm = tmp_path / "warm"
    dataset.write_dataset(warm, 3, 8, size=32, spacing_mm=19.2, acquisition=FAST, kind="warm",
                          split_fractions=(1, 0, 0), device="cpu")  # fmt: skip
    out = tmp_path / "run"
    assert run_cli(monkeypatch, [*command(data, out), "--data", str(data), str(warm)]) == 0
    summary = json.loads((out / train.SUMMARY_FILE).read_text())
    records = summary["data"]["datasets"]
    assert [r["kind"] for r in records] == ["random", "warm"] and [r["n_train"] for r in records] == [2, 3]
    assert summary["data"]["n_train"] == 5 and summary["data"]["n_val"] == 1  # warm has no val split
    assert summary["data"]["kind"] == "random+warm" and "--kind warm" in summary["data"]["simulated_with"]
    assert f"--data {data} {warm}" in summary["command"]
    description = train.card_fields(summary)["training_data"]["description"]
    assert "2 train of random activity shapes" in description and "3 train of random shapes over warm" in description
    assert [d["data"] for d in train.card_fields(summary)["training_data"]["datasets"]] == ["data", "warm"]
    other = tmp_path / "other_grid"
    dataset.write_dataset(other, 2, 8, size=16, spacing_mm=38.4, acquisition=FAST, device="cpu")
    with pytest.raises(ValueError, match="differs from .* in size"):
        train.train_dlpvc([data, other], tmp_path / "refused", channels=[4, 8], epochs=1, device="cpu")


def test_an_empty_validation_split_is_refused(monkeypatch, tmp_path, capsys):
    folder = tmp_path / "only_train"
    dataset.write_dataset(folder, 1, SEED, size=32, spacing_mm=19.2, acquisition=FAST, split_fractions=(1, 0, 0),
                          device="cpu")
    assert run_cli(monkeypatch, command(folder, tmp_path / "run")) == 2
    assert "the 'val' split" in capsys.readouterr().err


def test_train_under_torchrun_writes_once_and_records_the_processes(data, tmp_path):
    out, registry = tmp_path / "run", tmp_path / "models"
    deepdosimetry = str(Path(sys.executable).parent / "deepdosimetry")
    saving = ["--batch-size", "2", "--epochs", "1", "--no-flips", "--save-model", "dlpvc-ddp"]
    saving += ["--models-dir", str(registry)]
    finished = torchrun([deepdosimetry, *command(data, out, *saving)])
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout.count("trained 1 epoch(s)") == 1  # rank 0 alone reports and saves
    summary = json.loads((out / train.SUMMARY_FILE).read_text())
    assert summary["hardware"].startswith("2 processes (torchrun), each cpu: ")
    _, card = models.load_model("dlpvc-ddp", DLPVCModel.from_config, device="cpu", folder=registry)
    expected = {"world_size": 2, "global_batch_size": 2, "batch_size_per_process": 1, "lr": train.DEFAULTS["lr"]}
    assert card["parallel_training"] == expected
    single = train.train_dlpvc(data, tmp_path / "single", channels=[4, 8], epochs=1, batch_size=2, flips=False,
                               device="cpu")  # fmt: skip
    assert summary["result"]["best_val_loss"] == pytest.approx(single.result.best_val_loss, rel=1e-4)
