"""deepdosimetry planar-to-3d: a virtual patient's planar DICOM, CT, PET and organs to 3D activity, with the
measured images placed on the CT's projection grid, a fine-tuned patient model and the conjugate view beside."""

from __future__ import annotations

import json

import numpy as np
import pytest

from DosimetryCore import io
from DosimetryCore.cli import main as cli
from DosimetryCore.core.volume import image_from_array, set_unit
from DosimetryCore.learning import models
from PlanarTo3DLib import data

SPACING = (data.GRID_SPACING_MM,) * 3

def test_activity_table_figure_and_patient_model(case, tmp_path, capsys):
    folder, files, patient = case
    out = tmp_path / "out"
    argv = ["planar-to-3d", "--planar", str(files["planar"]), "--ct", str(files["ct"]), "--pet", str(files["pet"]),
            "--seg", str(files["seg"]), "--sensitivity-cps-per-mbq", "9.5", "--model", "planar3d-test",
            "--models-dir", str(folder / "models"), "--fine-tune", str(out / "patient"), "--variations", "2",
            "--epochs", "1", "--output", str(out / "activity.nrrd"), "--table", str(out / "organs.csv"),
            "--figure", str(out / "mip.png")]  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "planar images placed: shift" in printed and "conjugate view" in printed
    activity = io.read_image(out / "activity.nrrd")
    record = json.loads(activity.GetMetaData("deepdosimetry.provenance"))
    assert record["alignment"]["correlation_after"] > 0.9
    assert record["alignment"]["translation_mm"] == pytest.approx([-9.0, 14.0], abs=2.0)
    assert record["patient_model_sha256"] and record["generic_model"] == "planar3d-test"
    header = (out / "organs.csv").read_text().splitlines()[0]
    assert "activity_MBq" in header and "conjugate_view_MBq" in header
    assert (out / "mip.png").stat().st_size > 1000
    assert models.read_card("patient-model", out / "patient")["fine_tuned_from"]["generic_model"] == "planar3d-test"


def test_bad_inputs_are_refused_before_anything_is_written(case, tmp_path, capsys):
    folder, files, patient = case
    base = ["planar-to-3d", "--planar", str(files["planar"]), "--ct", str(files["ct"]), "--sensitivity-cps-per-mbq",
            "9.5", "--model", "planar3d-test", "--models-dir", str(folder / "models"),
            "--output", str(tmp_path / "a.nrrd")]  # fmt: skip
    far_away = image_from_array(np.ones(data.GRID_SHAPE_ZYX, np.float32), spacing=SPACING, origin=(900.0, 0.0, 0.0))
    empty_pet = io.write_image(set_unit(far_away, "Bq/mL"), tmp_path / "far.nrrd")
    assert cli.main([*base, "--pet", str(empty_pet), "--seg", str(files["seg"])]) == 2
    assert "holds no activity on the CT's field" in capsys.readouterr().err
    far_seg = io.read_image(files["seg"])
    far_seg.SetOrigin((2000.0, 0.0, 0.0))
    far = io.write_image(far_seg, tmp_path / "far_seg.nrrd")
    assert cli.main([*base, "--pet", str(files["pet"]), "--seg", str(far)]) == 2
    assert "has no voxel on the CT's field" in capsys.readouterr().err
    assert not (tmp_path / "a.nrrd").exists()
