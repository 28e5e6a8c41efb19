"""The simulate and simulate-planar sub-commands write complete, reloadable outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import slicer

from DosimetryCore import io
from DosimetryCore.cli import main as cli
from DosimetryCore.io import mrml


def test_simulate_writes_images_provenance_and_a_scene(tmp_path, capsys):
    out = tmp_path / "case"
    assert cli.main(["simulate", "--out", str(out), "--seed", "2", "--size", "40", "--spacing-mm", "16",
                     "--views", "24"]) == 0
    for name in ("ct", "labels", "activity", "mu", "anterior", "posterior", "osem_rr_noisy", "projections_noisy"):
        assert (out / f"{name}.nrrd").is_file(), name
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["seed"] == 2 and provenance["acquisition"]["views"] == 24
    assert io.read_image(out / "osem_rr_noisy.nrrd").GetMetaData("deepdosimetry.unit") == "Bq/mL"
    scene = mrml.load_scene_bundle(out / "case.mrb")
    activity = slicer.util.arrayFromVolume(scene.GetFirstNodeByName("activity"))
    np.testing.assert_array_equal(activity, sitk.GetArrayFromImage(io.read_image(out / "activity.nrrd")))
    assert scene.GetFirstNodeByName("organs").GetSegmentation().GetNumberOfSegments() > 5
    assert "wrote 12 images" in capsys.readouterr().out


def test_simulate_planar_from_files(tmp_path):
    activity = np.zeros((20, 20, 20), np.float32)
    activity[8:12, 8:12, 8:12] = 5e4
    activity_image = sitk.GetImageFromArray(activity)
    activity_image.SetSpacing((10.0, 10.0, 10.0))
    hu = np.full(activity.shape, -1000.0, np.float32)
    hu[2:18, 2:18, 2:18] = 0.0  # a water body in air
    ct = sitk.GetImageFromArray(hu)
    ct.CopyInformation(activity_image)
    io.write_image(activity_image, tmp_path / "a.nrrd")
    io.write_image(ct, tmp_path / "ct.nrrd")
    arguments = ["simulate-planar", "--activity", str(tmp_path / "a.nrrd"), "--ct", str(tmp_path / "ct.nrrd"),
                 "--out", str(tmp_path / "planar"), "--counts-noise", "--seed", "4"]
    assert cli.main(arguments) == 0
    anterior = sitk.GetArrayFromImage(io.read_image(tmp_path / "planar" / "anterior.nrrd"))
    assert anterior.shape == (20, 20) and anterior.sum() > 0
    np.testing.assert_array_equal(anterior, np.round(anterior))
    assert cli.main(arguments) == 0
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(io.read_image(tmp_path / "planar" / "anterior.nrrd")), anterior
    )


def test_simulate_planar_reports_bad_input(tmp_path, capsys):
    arguments = ["simulate-planar", "--activity", str(tmp_path / "missing.nrrd"), "--ct", str(tmp_path / "ct.nrrd"),
                 "--out", str(tmp_path / "planar")]
    assert cli.main(arguments) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "planar").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--views", "4"], "--views: expected a positive multiple of 6"),
        (["--views", "0"], "--views: expected a positive multiple of 6"),
        (["--size", "64", "--spacing-mm", "4.8"], "use --spacing-mm 9.6 or more"),
        (["--size", "100000"], "--size: expected 16 to 512"),
        (["--seed", "-1"], "--seed: expected a non-negative integer"),
    ],
)
def test_simulate_checks_every_argument_before_work(tmp_path, capsys, extra, message):
    assert cli.main(["simulate", "--out", str(tmp_path / "case"), "--seed", "1", *extra]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "case").exists()


def test_simulate_refuses_an_output_folder_that_is_a_file(tmp_path, capsys):
    (tmp_path / "case").write_text("not a folder")
    assert cli.main(["simulate", "--out", str(tmp_path / "case"), "--seed", "1"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_simulate_derives_the_spacing_for_a_small_size():
    from DosimetryCore.cli.simulate import _spacing_for

    assert _spacing_for(64, None) == 9.6 and _spacing_for(128, None) == 4.8 and _spacing_for(256, None) == 4.8
