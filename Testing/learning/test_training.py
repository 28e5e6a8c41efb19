"""DosimetryCore.learning.training: the shared loop (seeding, checkpoints, resume, early stopping, loss curve)."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image
from torch import nn

from DosimetryCore.core.progress import Cancelled
from DosimetryCore.learning.curves import plot_loss_curve
from DosimetryCore.learning.training import (
    BEST_CHECKPOINT,
    LATEST_CHECKPOINT,
    load_checkpoint,
    seed_everything,
    train,
)

SETTINGS = {"batch_size": 4, "lr": 0.05, "seed": 11, "device": "cpu"}


def volumes(n: int, seed: int, slope: float = 2.0, offset: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random (1, 4, 4, 4) volumes and the trivial target ``slope * x + offset``."""
    x = torch.rand((n, 1, 4, 4, 4), generator=torch.Generator().manual_seed(seed))
    return x, slope * x + offset


def tiny_model(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    seed_everything(seed)
    return nn.Sequential(nn.Conv3d(1, 4, 1), nn.Dropout(dropout), nn.Conv3d(4, 1, 1))


def losses(history):
    return [(entry["train_loss"], entry["val_loss"]) for entry in history]


def test_a_tiny_model_learns_a_linear_map(tmp_path):
    reports = []
    result = train(
        tiny_model(),
        volumes(16, 1),
        volumes(8, 2),
        nn.functional.mse_loss,
        epochs=15,
        checkpoint_dir=tmp_path,
        progress=lambda fraction, message: reports.append((fraction, message)),
        **SETTINGS,
    )
    history = result.history
    assert [entry["epoch"] for entry in history] == list(range(1, 16))
    assert history[-1]["val_loss"] < 0.02 * history[0]["val_loss"]
    assert history[-1]["train_loss"] < 0.02 * history[0]["train_loss"]
    assert result.best_epoch == min(history, key=lambda entry: entry["val_loss"])["epoch"]
    assert not result.stopped_early and result.wall_time_s > 0
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert len(reports) == 15 * (4 + 1) + 1  # every batch, every epoch, the end
    assert reports[0][1].startswith("epoch 1/15, batch 1/4, loss")


def test_same_seed_same_history_and_weights(tmp_path):
    def run(folder, seed=SETTINGS["seed"]):
        model = tiny_model(dropout=0.2)
        settings = {**SETTINGS, "seed": seed}
        result = train(
            model, volumes(12, 1), volumes(4, 2), nn.functional.mse_loss, epochs=4, checkpoint_dir=folder, **settings
        )
        return result, model

    (first, model_a), (second, model_b) = run(tmp_path / "a"), run(tmp_path / "b")
    assert losses(first.history) == losses(second.history)
    for key, value in model_a.state_dict().items():
        assert torch.equal(value, model_b.state_dict()[key])
    other, _ = run(tmp_path / "c", seed=12)
    assert losses(other.history) != losses(first.history)


def test_resume_after_cancel_matches_an_uninterrupted_run(tmp_path):
    kwargs = {"epochs": 6, "lr_schedule": "cosine", "model_config": {"kind": "tiny"}, **SETTINGS}
    data = (volumes(12, 1), volumes(4, 2), nn.functional.mse_loss)
    whole_model = tiny_model(dropout=0.2)
    whole = train(whole_model, *data, checkpoint_dir=tmp_path / "whole", **kwargs)

    def cancel_in_epoch_4(fraction, message):
        if message.startswith("epoch 4/6, batch 2"):
            raise Cancelled

    with pytest.raises(Cancelled):
        train(tiny_model(dropout=0.2), *data, checkpoint_dir=tmp_path / "split", progress=cancel_in_epoch_4, **kwargs)
    assert load_checkpoint(tmp_path / "split" / LATEST_CHECKPOINT)["epoch"] == 3
    resumed_model = tiny_model(seed=99, dropout=0.2)  # other initial weights: the checkpoint replaces them
    resumed = train(resumed_model, *data, checkpoint_dir=tmp_path / "split", resume=True, **kwargs)

    assert losses(resumed.history) == losses(whole.history)
    assert [entry["lr"] for entry in resumed.history] == [entry["lr"] for entry in whole.history]
    assert resumed.best_epoch == whole.best_epoch
    for key, value in whole_model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key])


def test_resume_checks_and_refusals(tmp_path):
    data = (volumes(8, 1), volumes(4, 2), nn.functional.mse_loss)
    train(tiny_model(), *data, epochs=1, checkpoint_dir=tmp_path, **SETTINGS)
    with pytest.raises(ValueError, match="already holds latest.pt"):
        train(tiny_model(), *data, epochs=2, checkpoint_dir=tmp_path, **SETTINGS)
    with pytest.raises(ValueError, match="resume: seed is 5 but the checkpoint"):
        train(tiny_model(), *data, epochs=2, checkpoint_dir=tmp_path, resume=True, **{**SETTINGS, "seed": 5})
    extended = train(tiny_model(), *data, epochs=2, checkpoint_dir=tmp_path, resume=True, **SETTINGS)
    assert [entry["epoch"] for entry in extended.history] == [1, 2]


def test_early_stopping_keeps_the_best_weights(tmp_path):
    # Learning 2x on the training set takes the model away from -2x on the validation set:
    # the validation loss rises every epoch, so epoch 1 stays best.
    model = nn.Conv3d(1, 1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.5)
    result = train(
        model,
        volumes(8, 1, offset=0.0),
        volumes(4, 2, slope=-2.0, offset=0.0),
        nn.functional.mse_loss,
        epochs=20,
        early_stop_patience=2,
        checkpoint_dir=tmp_path,
        **SETTINGS,
    )
    assert result.stopped_early
    assert len(result.history) == 3 and result.best_epoch == 1
    best = load_checkpoint(result.best_checkpoint)
    assert best["epoch"] == 1
    assert torch.equal(model.weight, best["model_state"]["weight"])
    again = train(
        model,
        volumes(8, 1),
        volumes(4, 2),
        nn.functional.mse_loss,
        epochs=20,
        early_stop_patience=2,
        checkpoint_dir=tmp_path,
        resume=True,
        **SETTINGS,
    )
    assert len(again.history) == 3  # a stopped run stays stopped


def test_plateau_schedule_halves_the_rate(tmp_path):
    model = nn.Conv3d(1, 1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.5)
    result = train(
        model,
        volumes(8, 1, offset=0.0),
        volumes(4, 2, slope=-2.0, offset=0.0),
        nn.functional.mse_loss,
        epochs=8,
        lr_schedule="plateau",
        checkpoint_dir=tmp_path,
        **SETTINGS,
    )
    assert [entry["lr"] for entry in result.history] == [0.05] * 7 + [0.025]


def test_cosine_schedule_anneals(tmp_path):
    result = train(
        tiny_model(),
        volumes(4, 1),
        volumes(4, 2),
        nn.functional.mse_loss,
        epochs=4,
        lr_schedule="cosine",
        checkpoint_dir=tmp_path,
        **SETTINGS,
    )
    expected = [0.05 * (1 + math.cos(math.pi * epoch / 4)) / 2 for epoch in range(4)]
    assert [entry["lr"] for entry in result.history] == pytest.approx(expected)


def test_checkpoint_contents(tmp_path):
    result = train(
        tiny_model(),
        volumes(8, 1),
        volumes(4, 2),
        nn.functional.mse_loss,
        epochs=2,
        checkpoint_dir=tmp_path,
        model_config={"arch": "tiny", "channels": [4]},
        **SETTINGS,
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == [BEST_CHECKPOINT, LATEST_CHECKPOINT]
    checkpoint = torch.load(result.latest_checkpoint, weights_only=True)
    assert checkpoint["epoch"] == 2 and checkpoint["seed"] == SETTINGS["seed"]
    assert checkpoint["model_config"] == {"arch": "tiny", "channels": [4]}
    assert checkpoint["settings"]["batch_size"] == 4 and checkpoint["settings"]["epochs"] == 2
    assert losses(checkpoint["history"]) == losses(result.history)
    assert {"model_state", "optimizer_state", "scheduler_state", "best_epoch", "best_val_loss"} <= set(checkpoint)
    assert set(checkpoint["model_state"]) == set(tiny_model().state_dict())
    assert checkpoint["optimizer_state"]["state"]  # Adam moments are kept for resuming


def test_bad_arguments(tmp_path):
    data = (volumes(4, 1), volumes(4, 2), nn.functional.mse_loss)
    with pytest.raises(ValueError, match="lr_schedule: unknown 'step'"):
        train(tiny_model(), *data, epochs=1, lr_schedule="step", checkpoint_dir=tmp_path, **SETTINGS)
    with pytest.raises(ValueError, match="train_data: 4 inputs but 3 targets"):
        x, y = volumes(4, 1)
        train(tiny_model(), (x, y[:3]), data[1], data[2], epochs=1, checkpoint_dir=tmp_path, **SETTINGS)
    with pytest.raises(ValueError, match="epochs"):
        train(tiny_model(), *data, epochs=0, checkpoint_dir=tmp_path, **SETTINGS)
    with pytest.raises(FloatingPointError, match="diverged"):
        train(
            tiny_model(),
            data[0],
            data[1],
            lambda p, t: (p - t).sum() * float("nan"),
            epochs=1,
            checkpoint_dir=tmp_path / "nan",
            **SETTINGS,
        )
    assert not (tmp_path / "nan" / LATEST_CHECKPOINT).exists()


def test_loss_curve_png(tmp_path):
    history = [
        {"epoch": 1, "train_loss": 1.0, "val_loss": 1.2, "lr": 0.1, "wall_time_s": 0.1},
        {"epoch": 2, "train_loss": 0.5, "val_loss": 0.7, "lr": 0.1, "wall_time_s": 0.1},
        {"epoch": 3, "train_loss": 0.3, "val_loss": 0.8, "lr": 0.1, "wall_time_s": 0.1},
    ]
    path = plot_loss_curve(history, tmp_path / "plots" / "loss.png")
    assert path == tmp_path / "plots" / "loss.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    with pytest.raises(ValueError, match="history: is empty"):
        plot_loss_curve([], tmp_path / "empty.png")


def test_bf16_training_steps_still_learn_and_validation_and_metrics_stay_float32(tmp_path):
    seen = []

    def metrics(model):
        output = model(volumes(2, 3)[0])
        seen.append((output.dtype, torch.is_grad_enabled(), model.training))
        return {"val_mae": float((output - volumes(2, 3)[1]).abs().mean())}

    result = train(tiny_model(), volumes(16, 1), volumes(8, 2), nn.functional.mse_loss, epochs=12,
                   checkpoint_dir=tmp_path / "bf16", precision="bf16", epoch_metrics=metrics, **SETTINGS)  # fmt: skip
    history = result.history
    assert history[-1]["val_loss"] < 0.05 * history[0]["val_loss"]
    assert [entry["val_mae"] for entry in history][-1] < history[0]["val_mae"]
    assert seen == [(torch.float32, False, False)] * 12
    assert load_checkpoint(result.latest_checkpoint)["settings"]["precision"] == "bf16"
    with pytest.raises(ValueError, match="precision: unknown 'fp16'"):
        train(tiny_model(), volumes(4, 1), volumes(4, 2), nn.functional.mse_loss, epochs=1,
              checkpoint_dir=tmp_path / "fp16", precision="fp16", **SETTINGS)  # fmt: skip


def test_loss_curve_draws_further_numbers_in_a_second_panel(tmp_path):
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e, "lr": 0.1, "wall_time_s": 0.1,
                "train_ssim": 0.8 + 0.01 * e, "val_ssim": 0.79 + 0.01 * e} for e in (1, 2, 3)]  # fmt: skip
    plain = plot_loss_curve([{k: v for k, v in h.items() if "ssim" not in k} for h in history], tmp_path / "a.png")
    both = plot_loss_curve(history, tmp_path / "b.png")
    assert Image.open(both).size[1] > Image.open(plain).size[1]  # the metric panel below the loss
