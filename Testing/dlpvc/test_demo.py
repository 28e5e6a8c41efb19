"""DLPVCLib.demo: ``make demo`` writes the volumes, metrics, figure and Slicer scene of one simulated case.

The default (``torso``) case is a patient-like phantom, what a physicist corrects; the ``random`` case is seed
003's random shapes in a cold body. The shipped model must improve both on no PVC.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from DLPVCLib import cli as dlpvc_cli
from DLPVCLib import demo
from DosimetryCore import io
from DosimetryCore.cli import main as cli
from DosimetryCore.core.metadata import PROVENANCE_KEY as PVC_PROVENANCE_KEY
from DosimetryCore.io import mrml

SEED = 5


def run_cli(monkeypatch, argv: list[str]) -> int:
    monkeypatch.setattr(
        cli, "_discovered_registrations",
        lambda group: [("demo-pvc", dlpvc_cli.register_demo_pvc)] if group == cli.ENTRY_POINT_GROUP else [],
    )
    return cli.main(argv)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo-output"
    messages = []
    outcome = demo.run_demo(out, SEED, device="cpu", progress=lambda fraction, text: messages.append(fraction))
    assert outcome["provenance"]["case"] == "torso"
    outcome["progress"] = messages
    outcome["out"] = out
    return outcome


def test_demo_writes_every_volume_the_metrics_figure_and_scene(result):
    out = result["out"]
    for name in ("metrics.csv", "report.png", "report.mrb", "report.json", "truth.nrrd", "ct.nrrd", "labels.nrrd",
                 "spect_rr.nrrd", "pvc_iy.nrrd", "pvc_dl.nrrd"):
        assert (out / name).is_file(), name
    with (out / "metrics.csv").open() as stream:
        lines = list(csv.reader(stream))
    assert lines[0][:5] == ["method", "ssim", "nrmse_percent", "vaa_percent", "ad_percent"]
    assert any(column.startswith("RC ") for column in lines[0])
    assert [line[0] for line in lines[2:]] == ["No PVC", "IY-PVC", "DL-PVC"]
    scene = mrml.load_scene_bundle(out / "report.mrb")
    for name in ("truth", "No PVC", "IY-PVC", "DL-PVC", "CT", "segments", "metrics"):
        assert scene.GetFirstNodeByName(name) is not None, name
    assert result["progress"][0] == 0.0 and result["progress"][-1] == 1.0
    assert result["progress"] == sorted(result["progress"])


def test_demo_numbers_are_consistent_and_state_their_provenance(result):
    rows = {row["method"]: row for row in result["metrics"]}
    # DL-PVC keeps the total
    assert rows["DL-PVC"]["ad_percent"] == pytest.approx(rows["No PVC"]["ad_percent"], abs=1e-3)
    assert rows["DL-PVC"]["ssim"] > rows["No PVC"]["ssim"]
    truth = sitk.GetArrayFromImage(io.read_image(result["out"] / "truth.nrrd"))
    corrected = sitk.GetArrayFromImage(io.read_image(result["out"] / "pvc_dl.nrrd"))
    assert corrected.shape == truth.shape and np.isfinite(corrected).all() and corrected.min() >= 0
    document = json.loads((result["out"] / "report.json").read_text())
    provenance = document["provenance"]
    assert provenance["seed"] == SEED and provenance["input"] == "osem_rr_noisy" and provenance["case"] == "torso"
    assert provenance["phantom"]["generator"] == "DosimetryCore.phantoms.make_torso"
    assert provenance["iy_pvc"]["regions"] == "organ and lesion labels"
    assert len(provenance["model"]["weights_sha256"]) == 64
    assert 0 < provenance["iy_pvc"]["fwhm_mm"] < 40
    assert provenance["command"].startswith(f"deepdosimetry demo-pvc --case torso --seed {SEED}")
    dl_record = document["image_provenance"]["DL-PVC"][PVC_PROVENANCE_KEY]
    assert dl_record["method"].startswith("DL-PVC")
    assert dl_record["model_sha256"] == provenance["model"]["weights_sha256"]


def test_the_random_case_uses_the_components_of_the_truth_and_keeps_the_total(tmp_path, monkeypatch, capsys):
    out = tmp_path / "random"
    argv = ["demo-pvc", "--case", "random", "--seed", "3", "--out", str(out), "--device", "cpu"]
    assert run_cli(monkeypatch, argv) == 0
    assert "random case, seed 3" in capsys.readouterr().out
    document = json.loads((out / "report.json").read_text())
    provenance = document["provenance"]
    assert provenance["case"] == "random"
    assert provenance["iy_pvc"]["regions"] == "connected components of the true activity"
    assert provenance["phantom"]["generator"] == "DLPVCLib.dataset.simulate_pvc_case"
    assert provenance["command"].startswith("deepdosimetry demo-pvc --case random --seed 3")
    totals = provenance["total_activity_MBq"]
    assert totals["DL-PVC"] == pytest.approx(totals["No PVC"], rel=1e-5)
    rows = {row["method"]: row for row in json.loads((out / "report.json").read_text())["metrics"]}
    assert rows["DL-PVC"]["ssim"] > rows["No PVC"]["ssim"]
    with (out / "metrics.csv").open() as stream:
        header = next(csv.reader(stream))
    assert "RC region 1" in header


def test_demo_refuses_a_bad_seed_or_case_or_a_missing_model_and_writes_nothing(tmp_path, monkeypatch, capsys):
    with pytest.raises(ValueError, match="seed"):
        demo.run_demo(tmp_path / "a", -1)
    with pytest.raises(ValueError, match="case: unknown 'xcat'"):
        demo.run_demo(tmp_path / "a", 1, case="xcat")
    assert run_cli(monkeypatch, ["demo-pvc", "--out", str(tmp_path / "b"), "--model", "dlpvc-missing"]) == 2
    assert "dlpvc-missing" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
