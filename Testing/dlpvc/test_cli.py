"""`deepdosimetry pvc`: IY-PVC with a labelmap and table, DL-PVC with a model from the resources folder."""

from __future__ import annotations

import csv
import importlib.metadata
import json

import numpy as np
import pytest
import SimpleITK as sitk
from dlpvc.cases import odd_image, save_tiny_model, sphere_case

from DLPVCLib import cli as pvc_cli
from DLPVCLib import constants, correction
from DosimetryCore import io
from DosimetryCore.cli import main as cli
from DosimetryCore.core.metadata import LABEL_NAMES_KEY, PROVENANCE_KEY
from DosimetryCore.core.resources import ENVIRONMENT_VARIABLE
from DosimetryCore.core.volume import image_from_array


class _PvcEntryPoint:
    name = "pvc"

    def load(self):
        return pvc_cli.register_pvc


@pytest.fixture(autouse=True)
def pvc_command(monkeypatch):
    """Register ``pvc`` as its ``deepdosimetry.commands`` entry point does, where the installed metadata lacks it."""
    installed = importlib.metadata.entry_points

    def entry_points(group):
        points = list(installed(group=group))
        if group == cli.ENTRY_POINT_GROUP and "pvc" not in {point.name for point in points}:
            points.append(_PvcEntryPoint())
        return points

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


@pytest.fixture
def resources(tmp_path, monkeypatch):
    """A private resources folder (``DEEPDOSIMETRY_RESOURCES``) with an empty ``Models/``."""
    folder = tmp_path / "resources"
    (folder / "Models").mkdir(parents=True)
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, str(folder))
    return folder


@pytest.fixture
def files(tmp_path):
    """SPECT (blurred sphere, Bq/mL) and its named labelmap as NRRD files; an output folder."""
    image, labelmap, _ = sphere_case(fwhm_mm=12.0)
    labelmap.SetMetaData(LABEL_NAMES_KEY, json.dumps({"1": "lesion"}))
    spect = io.write_image(image, tmp_path / "in" / "spect.nrrd")
    seg = io.write_image(labelmap, tmp_path / "in" / "seg.nrrd")
    return spect, seg, tmp_path / "out"


def test_iy_with_a_labelmap_writes_the_corrected_image_and_the_table(files, capsys):
    spect, seg, out = files
    arguments = ["pvc", "--input", str(spect), "--method", "iy", "--seg", str(seg), "--fwhm-mm", "12", "12", "12"]
    assert cli.main([*arguments, "--output", str(out / "pvc.nrrd"), "--table", str(out / "t.csv")]) == 0
    corrected = io.read_image(out / "pvc.nrrd")
    assert corrected.GetMetaData("deepdosimetry.unit") == "Bq/mL"
    with (out / "t.csv").open() as stream:
        (row,) = list(csv.DictReader(stream))
    assert list(row) == ["segment", *correction.TABLE_UNITS]
    assert row["segment"] == "lesion"
    assert float(row["mean_after_Bq_per_mL"]) == pytest.approx(1000.0, rel=0.02)
    assert float(row["mean_before_Bq_per_mL"]) < 700.0
    output = capsys.readouterr().out
    assert "IY-PVC, total activity" in output and "lesion:" in output


def test_dl_uses_the_model_in_the_resources_folder(files, resources, capsys):
    _, seg, out = files
    save_tiny_model(resources / "Models", extra={"limitations": ["untrained test network"]})
    spect = io.write_image(odd_image(), out.parent / "in" / "odd.nrrd")
    arguments = ["pvc", "--input", str(spect), "--method", "dl", "--device", "cpu", "--output", str(out / "dl.nrrd")]
    assert cli.main(arguments) == 0
    corrected, original = io.read_image(out / "dl.nrrd"), io.read_image(spect)
    assert corrected.GetSize() == original.GetSize()
    np.testing.assert_allclose(corrected.GetDirection(), original.GetDirection(), atol=1e-12)
    assert correction.total_activity_Bq(corrected) == pytest.approx(correction.total_activity_Bq(original), rel=1e-6)
    provenance = json.loads(corrected.GetMetaData(PROVENANCE_KEY))
    assert provenance["model_name"] == constants.DEFAULT_MODEL
    assert provenance["model_limitations"] == ["untrained test network"]
    assert provenance["inference"] == correction.INFERENCE[True]
    printed = capsys.readouterr()
    assert "DL-PVC, total activity" in printed.out
    assert f"note ({constants.DEFAULT_MODEL} model card): untrained test network" in printed.err
    assert sorted(path.name for path in out.iterdir()) == ["dl.nrrd"]
    assert cli.main([*arguments[:-1], str(out / "one.nrrd"), "--single-pass"]) == 0
    single = io.read_image(out / "one.nrrd")
    assert json.loads(single.GetMetaData(PROVENANCE_KEY))["inference"] == correction.INFERENCE[False]
    assert np.abs(sitk.GetArrayFromImage(single) - sitk.GetArrayFromImage(corrected)).max() > 0


def test_a_labelmap_on_another_grid_is_resampled_onto_the_spect(files, tmp_path):
    spect, _, out = files
    image = io.read_image(spect)
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[3:7, 3:7, 3:7] = 2
    coarse = image_from_array(labels, spacing=(8.0, 8.0, 8.0), origin=image.GetOrigin())
    seg = io.write_image(coarse, tmp_path / "in" / "coarse.nrrd")
    arguments = ["pvc", "--input", str(spect), "--method", "iy", "--seg", str(seg), "--output", str(out / "o.nrrd")]
    assert cli.main([*arguments, "--table", str(out / "t.csv")]) == 0
    with (out / "t.csv").open() as stream:
        (row,) = list(csv.DictReader(stream))
    assert row["segment"] == "label 2" and float(row["volume_ml"]) == pytest.approx(64 * 0.512, rel=0.2)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "dl"], "no model dlpvc-r2unet in {models}; train one with `deepdosimetry train dlpvc`"),
        (["--method", "dl", "--model", "dlpvc-nothere"], "no model dlpvc-nothere in {models}"),
        (["--method", "iy"], "--seg: IY-PVC needs a labelmap"),
        (["--method", "iy", "--single-pass"], "--single-pass: only for --method dl"),
        (["--method", "dl", "--table", "t.csv"], "--table: needs --seg"),
        (["--method", "dl", "--device", "cuda:99"], "device"),
    ],
)
def test_errors_exit_2_with_the_reason_and_write_nothing(files, resources, capsys, extra, message):
    spect, _, out = files
    if "--device" in extra:
        save_tiny_model(resources / "Models")
    assert cli.main(["pvc", "--input", str(spect), *extra, "--output", str(out / "o.nrrd")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("deepdosimetry pvc: error: ")
    assert message.format(models=resources / "Models") in error
    assert not out.exists()


def test_bad_spect_and_unrelated_labelmap_exit_2(files, tmp_path, capsys):
    spect, seg, out = files
    values = sitk.GetArrayFromImage(io.read_image(spect))
    values[0, 0, 0] = -0.05 * values.max()  # beyond what filtering leaves (IY-PVC accepts down to -1 %)
    negative = io.write_image(image_from_array(values, io.read_image(spect)), tmp_path / "in" / "negative.nrrd")
    far = sitk.Image(io.read_image(seg))
    far.SetOrigin((500.0, 500.0, 500.0))
    far_seg = io.write_image(far, tmp_path / "in" / "far.nrrd")
    for source, labels, reason in ((negative, seg, "negative activity"), (spect, far_seg, "no voxel on the SPECT")):
        arguments = ["pvc", "--input", str(source), "--method", "iy", "--seg", str(labels)]
        assert cli.main([*arguments, "--output", str(out / "o.nrrd")]) == 2
        assert reason in capsys.readouterr().err
    assert not out.exists()


def test_dl_warns_loudly_when_the_spect_is_outside_the_training_domain(files, resources, capsys):
    _, _, out = files
    domain = {"spacing_mm": [6.0] * 3, "total_activity_MBq": [1, 10]}
    save_tiny_model(resources / "Models", extra={"training_domain": domain})
    coarse = image_from_array(np.ones((5, 5, 5), np.float32), spacing=(15.0,) * 3, unit="Bq/mL")
    spect = io.write_image(coarse, out.parent / "in" / "coarse.nrrd")
    arguments = ["pvc", "--input", str(spect), "--method", "dl", "--device", "cpu", "--output", str(out / "dl.nrrd")]
    assert cli.main(arguments) == 0
    printed = capsys.readouterr().err
    assert "WARNING: outside the training domain" in printed and "WARNING: the SPECT's field does not cover" in printed
    recorded = json.loads(io.read_image(out / "dl.nrrd").GetMetaData(PROVENANCE_KEY))["warnings"]
    assert any("outside the training domain" in note for note in recorded)
    assert any("total activity" in note for note in recorded), "the activity check's note is kept beside them"
