"""The bad-input matrix: each doubtful or wrong input, through the command line and the module logic, ends in a
clear refusal (exit 2 or ValueError) that names the problem, writes no output and leaves every input unchanged.

The cases are the ones a new user met (outputs over inputs, CTs in other units, CTs that miss the activity,
options a method ignores, absurd sizes, damaged DICOM scaling) and the ones refused well before (NaN, negative
activity, unreadable files).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from DosimetryCore import io
from DosimetryCore.cli import main as cli
from DosimetryCore.core.volume import image_from_array

GRID = {"spacing": (4.8, 4.8, 4.8), "origin": (10.0, -20.0, 5.0)}


def _checksums(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """A folder of inputs: activity (Bq/mL), CT (HU) and its wrong variants, a labelmap, a planar DICOM."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    hu = np.full((16, 16, 16), -1000.0, np.float32)
    hu[1:15, 1:15, 1:15] = 0.0
    hu[1:15, 3:13, 2:5] = -800.0
    activity = np.where(hu > -1000, 1.0e4, 0.0).astype(np.float32)
    activity[4:10, 4:10, 6:12] = 1.0e5
    labels = np.zeros(hu.shape, np.uint8)
    labels[4:10, 4:10, 6:12] = 1
    label_image = image_from_array(labels, **GRID)
    label_image.SetMetaData("deepdosimetry.label_names", json.dumps({"1": "lesion"}))
    io.write_image(image_from_array(activity, unit="Bq/mL", **GRID), folder / "activity.nrrd")
    io.write_image(label_image, folder / "seg.nrrd")
    io.write_image(image_from_array(hu, unit="HU", **GRID), folder / "ct.nrrd")
    wrong_ct = {
        "ct_density": (hu + 1000.0) * 0.00102 + 0.0012,
        "ct_offset": hu + 1024.0,
        "ct_labelmap": (hu > -1000).astype(np.float32) + (hu > -500),
    }
    for name, values in wrong_ct.items():
        io.write_image(image_from_array(values.astype(np.float32), **GRID), folder / f"{name}.nrrd")
    half = sitk.RegionOfInterest(io.read_image(folder / "ct.nrrd"), (16, 16, 7), (0, 0, 0))
    io.write_image(half, folder / "ct_half.nrrd")
    for name, change in (("nan", np.nan), ("negative", -0.05 * activity.max())):
        values = activity.copy()
        values[8, 8, 8] = change
        io.write_image(image_from_array(values, unit="Bq/mL", **GRID), folder / f"activity_{name}.nrrd")
    rng = np.random.default_rng(7)
    planar = io.write_planar_dicom(rng.poisson(40.0, (32, 16)), rng.poisson(30.0, (32, 16)), folder / "wb.dcm",
                                   (4.8, 4.8), 300.0)  # fmt: skip
    dataset = pydicom.dcmread(planar)
    dataset.RescaleSlope = "0"
    dataset.save_as(folder / "wb_slope0.dcm", enforce_file_format=False)
    (folder / "not_a_folder").write_text("a file where a folder is expected")
    return folder


# (command line with {i} = the inputs folder and {o} = the output folder, words the error must contain)
CLI_CASES = [
    ("dose-rate --activity {i}/activity.nrrd --ct {i}/ct.nrrd --output {i}/activity.nrrd", "--output"),
    ("dose-rate --activity {i}/activity.nrrd --ct {i}/ct.nrrd --output {o}/d.nrrd --seg {i}/seg.nrrd "
     "--table {i}/seg.nrrd", "--table"),
    ("dose-rate --activity {i}/activity.nrrd --ct {i}/ct_density.nrrd --output {o}/d.nrrd", "density map"),
    ("dose-rate --activity {i}/activity.nrrd --ct {i}/ct_offset.nrrd --output {o}/d.nrrd", "shifted by +1024"),
    ("dose-rate --activity {i}/activity.nrrd --ct {i}/ct_labelmap.nrrd --output {o}/d.nrrd", "labelmap"),
    ("dose-rate --activity {i}/activity.nrrd --ct {i}/ct_half.nrrd --output {o}/d.nrrd", "does not cover"),
    ("dose-rate --activity {i}/activity.nrrd --ct {i}/ct.nrrd --output {o}/d.nrrd --uncertainty {o}/u.nrrd",
     "--uncertainty: not used by --method vdk"),
    ("dose-rate --activity {i}/activity_nan.nrrd --ct {i}/ct.nrrd --output {o}/d.nrrd", "NaN"),
    ("dose-rate --activity {i}/activity_negative.nrrd --ct {i}/ct.nrrd --output {o}/d.nrrd", "negative"),
    ("dose-rate --activity {i}/activity.nrrd --ct {i}/ct.nrrd --output {o}/d.nrrd --seg {i}/seg.nrrd "
     "--table {i}/not_a_folder/t.csv", "which is a file"),
    ("dose-rate --activity {i}/missing.nrrd --ct {i}/ct.nrrd --output {o}/d.nrrd", "does not exist"),
    ("pvc --input {i}/activity.nrrd --method iy --seg {i}/seg.nrrd --output {i}/activity.nrrd", "--output"),
    ("pvc --input {i}/activity.nrrd --method iy --seg {i}/seg.nrrd --output {i}/seg.nrrd", "--output"),
    ("pvc --input {i}/activity.nrrd --method iy --seg {i}/seg.nrrd --fwhm-mm 5000 5000 5000 --output {o}/p.nrrd",
     "exceeds 100 mm"),
    ("pvc --input {i}/activity_negative.nrrd --method iy --seg {i}/seg.nrrd --output {o}/p.nrrd", "negative"),
    ("simulate --out {o}/case --seed 1 --views 4", "--views"),
    ("simulate --out {o}/case --seed 1 --views 0", "--views"),
    ("simulate --out {o}/case --seed 1 --size 64 --spacing-mm 4.8", "--spacing-mm 9.6"),
    ("simulate --out {i}/not_a_folder --seed 1", "is a file, not a folder"),
    ("simulate-planar --activity {i}/activity.nrrd --ct {i}/ct_offset.nrrd --out {o}/planar", "shifted by +1024"),
    ("import-planar {i}/wb_slope0.dcm --out {o}/planar", "RescaleSlope"),
    ("import-planar {i}/wb.dcm --out {i}/not_a_folder", "is a file, not a folder"),
    ("kernel --voxel-mm 0.01 --output {o}/k.nrrd", "outside 0.1-100 mm"),
    ("train dlpvc --data {i} --out {o}/run --save-model bad/name", "--save-model"),
    ("train dlpvc --data {i} --out {i}/not_a_folder", "is a file, not a folder"),
    ("demo-pvc --out {i}/not_a_folder", "is a file, not a folder"),
    ("simulate-pvc --out {i}/not_a_folder --n 1 --seed 1", "is a file, not a folder"),
    ("evaluate-pvc --data {i} --model dlpvc-r2unet --output {i}/not_a_folder/t.csv", "which is a file"),
    ("dose-rate --activity {i}/activity.nrrd --ct {i}/ct_offset.nrrd --method cnn --output {o}/d.nrrd",
     "shifted by +1024"),
    ("dose-rate --activity {i}/activity.nrrd --ct {i}/ct_half.nrrd --method cnn --output {o}/d.nrrd", "does not cover"),
    ("dose-rate --activity {i}/activity.nrrd --ct {i}/ct.nrrd --method cnn --model no-such-model --output {o}/d.nrrd",
     "no-such-model"),
    ("dose-rate --activity {i}/activity.nrrd --ct {i}/ct.nrrd --model dose-cnn --output {o}/d.nrrd",
     "--model: not used by --method vdk"),
    ("simulate-dose --out {i}/not_a_folder --n 1 --seed 1", "is a file, not a folder"),
    ("train dose-cnn --data {i} --out {o}/run", "not a DoseRateCNN dataset"),
    ("evaluate-dose --data {i} --output {o}/t.csv --checkpoint {i}/ct.nrrd", "not a DoseRateCNN dataset"),
    ("demo-dose --out {i}/not_a_folder", "is a file, not a folder"),
    ("absorbed-dose --timepoint 24:{i}/ct.nrrd:{i}/ct.nrrd --half-life-h 50 --output {o}/d.nrrd",
     "expected a dose rate in Gy/h or an activity in Bq/mL; the image says 'HU'"),
    ("absorbed-dose --timepoint 24:{i}/activity.nrrd --output {o}/d.nrrd", "TIME_H:IMAGE_FILE:CT_FILE"),
    ("absorbed-dose --timepoint 24:{i}/activity.nrrd: --half-life-h 50 --output {o}/d.nrrd",
     "the CT file is missing"),
    ("absorbed-dose --timepoint dicom:{i}/activity.nrrd:{i}/ct.nrrd --output {o}/d.nrrd", "needs --administered"),
    ("planar-to-3d --planar {i}/ct.nrrd --ct {i}/ct.nrrd --pet {i}/activity.nrrd --seg {i}/ct.nrrd "
     "--sensitivity-cps-per-mbq 9.5 --output {o}/a.nrrd", "is not a readable DICOM file"),
    ("absorbed-dose --timepoint 24:{i}/activity.nrrd:{i}/ct.nrrd --output {i}/ct.nrrd", "--output"),
]


@pytest.mark.parametrize(("command", "message"), CLI_CASES, ids=[f"{c.split()[0]}-{m}" for c, m in CLI_CASES])
def test_cli_refuses_and_writes_nothing(inputs, tmp_path, capsys, command, message):
    output = tmp_path / "outputs"
    before = _checksums(inputs)
    status = cli.main(command.format(i=inputs, o=output).split())
    error = capsys.readouterr().err
    assert status == 2, error
    assert message in error and "Traceback" not in error
    assert error.strip().splitlines()[-1].startswith("deepdosimetry ")  # the error is one line of its own
    assert not output.exists() or not any(output.rglob("*"))
    assert _checksums(inputs) == before


@pytest.fixture
def nodes(scene, inputs):
    from DosimetryCore.io import mrml

    def volume(name: str):
        return mrml.add_volume_node(scene, io.read_image(inputs / f"{name}.nrrd"), name)

    return scene, volume


@pytest.mark.parametrize(
    ("ct", "message"),
    [("ct_density", "density map"), ("ct_offset", r"shifted by \+1024"), ("ct_labelmap", "labelmap"),
     ("ct_half", "does not cover")],
)  # fmt: skip
def test_dose_rate_logic_refuses_bad_cts_and_adds_no_node(nodes, ct, message):
    from DoseRateCNNLib import logic

    scene, volume = nodes
    activity, ct_node = volume("activity"), volume(ct)
    before = (activity.GetImageData().GetScalarRange(), scene.GetNumberOfNodes())
    with pytest.raises(ValueError, match=message):
        logic.dose_rate_map(activity, ct_node, "vdk")
    assert (activity.GetImageData().GetScalarRange(), scene.GetNumberOfNodes()) == before


def test_module_logics_refuse_an_input_node_as_output(nodes):
    from DLPVCLib import logic as pvc_logic
    from DoseRateCNNLib import logic as dose_logic

    scene, volume = nodes
    activity, ct = volume("activity"), volume("ct")
    with pytest.raises(ValueError, match="inputs are never modified"):
        dose_logic.dose_rate_map(activity, ct, "led", output_volume=activity)
    with pytest.raises(ValueError, match="output"):
        pvc_logic.correct_volume(activity, "dl", output_volume=activity)
