"""PlanarTo3DLib.demo: demo-planar's outputs, with a small untrained model standing in for the shipped one."""

from __future__ import annotations

import json

from DosimetryCore.cli import main as cli


def test_demo_writes_inputs_activities_tables_and_figure(case, tmp_path, capsys):
    folder, _, _ = case
    out = tmp_path / "demo"
    argv = ["demo-planar", "--out", str(out), "--model", "planar3d-test", "--models-dir", str(folder / "models"),
            "--variations", "2", "--epochs", "1"]  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr().err
    names = {p.name for p in out.iterdir()}
    assert {"activity_generic.nrrd", "activity_patient_specific.nrrd", "metrics.csv", "organs.csv", "mip.png",
            "demo.json", "inputs", "patient-model"} <= names  # fmt: skip
    assert {p.name for p in (out / "inputs").iterdir()} == {"planar.dcm", "ct.nrrd", "pet.nrrd", "organs.nrrd",
                                                            "truth.nrrd"}  # fmt: skip
    record = json.loads((out / "demo.json").read_text())
    assert [row["method"] for row in record["metrics"]] == ["ResUNet generic", "ResUNet patient-specific",
                                                            "conjugate view"]  # fmt: skip
    assert record["provenance"]["alignment_correlation"] > 0.9
    assert "mean |organ error|" in capsys.readouterr().out
