"""PlanarTo3D commands end to end at the smallest size: train planar3d, then evaluate-planar with its card."""

from __future__ import annotations

import json
import math

from DosimetryCore.cli import main as cli


def test_train_then_evaluate_with_conjugate_view_beside(tmp_path, capsys):
    models_dir = tmp_path / "models"
    argv = ["train", "planar3d", "--out", str(tmp_path / "run"), "--patients", "1", "--variations", "1",
            "--val-patients", "1", "--epochs", "1", "--save-model", "planar3d-tiny",
            "--models-dir", str(models_dir)]  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr().err
    card = json.loads((models_dir / "planar3d-tiny" / "model_card.json").read_text())
    assert card["architecture"]["architecture"] == "ResUNet3D" and card["grid"]["spacing_mm"] == 9.6
    table = tmp_path / "eval" / "planar.csv"
    argv = ["evaluate-planar", "--model", "planar3d-tiny", "--models-dir", str(models_dir), "--patients", "1",
            "--variations", "2", "--epochs", "1", "--output", str(table), "--update-card"]  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert {p.name for p in table.parent.iterdir()} == {"planar.csv", "planar_patients.csv", "planar.md"}
    means = json.loads((models_dir / "planar3d-tiny" / "model_card.json").read_text())["metrics"]["held_out"]
    methods = {row["method"]: row for row in means}
    assert set(methods) == {"ResUNet generic", "ResUNet patient-specific", "conjugate view"}
    for method in ("ResUNet generic", "ResUNet patient-specific"):
        assert 0 < methods[method]["mae_norm"] and -1 < methods[method]["ssim"] <= 1
        assert methods[method]["planar_consistency"] < 1.0
    assert math.isfinite(methods["conjugate view"]["organ_abs_error_%"])
    assert math.isnan(methods["conjugate view"]["ssim"])
    assert "| conjugate view |" in capsys.readouterr().out
