"""DosimetryCore.dose.absorbed: registration of time points and absorbed dose per voxel and segment."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from DosimetryCore.core.volume import array_from_image, image_from_array, set_unit
from DosimetryCore.dose.absorbed import TimePoint, absorbed_dose
from DosimetryCore.imaging.registration import register_ct
from DosimetryCore.phantoms import LABELS, make_torso

HALF_LIVES_H = {"liver": 70.0, "spleen": 90.0, "kidney_left_cortex": 45.0, "kidney_right_cortex": 45.0}
RATE_GY_PER_H = {"liver": 0.02, "spleen": 0.05, "kidney_left_cortex": 0.08, "kidney_right_cortex": 0.08}
TIMES_H = (4.0, 24.0, 96.0, 168.0)
SHIFTS_MM = ((0.0, 0.0, 0.0), (6.0, -4.0, 3.0), (-5.0, 3.0, -6.0), (3.0, 5.0, 4.0))


@pytest.fixture(scope="module")
def torso():
    return make_torso((64, 48, 80), 8.0, seed=4, n_lesions=0)


def _dose_rate(torso, time_h: float) -> sitk.Image:
    labels = array_from_image(torso.labels)
    values = np.zeros(labels.shape, np.float32)
    for name, rate in RATE_GY_PER_H.items():
        values[labels == LABELS[name]] = rate * math.exp(-math.log(2) / HALF_LIVES_H[name] * time_h)
    return set_unit(image_from_array(values, torso.ct), "Gy/h", "absorbed dose rate")


def _shifted(image: sitk.Image, shift_mm, default: float) -> sitk.Image:
    """The image of a patient moved by ``shift_mm`` (x, y, z) in the scanner."""
    moved = sitk.Resample(image, image, sitk.TranslationTransform(3, [-s for s in shift_mm]), sitk.sitkLinear, default)
    moved.CopyInformation(image)
    for key in image.GetMetaDataKeys():
        moved.SetMetaData(key, image.GetMetaData(key))
    return moved


def test_a_known_rigid_shift_is_recovered_within_one_voxel(torso):
    moving = _shifted(torso.ct, (6.0, -4.0, 3.0), -1000.0)
    registration = register_ct(torso.ct, moving)
    assert np.allclose(registration.translation_mm, (6.0, -4.0, 3.0), atol=8.0)
    assert np.allclose(registration.translation_mm, (6.0, -4.0, 3.0), atol=1.5)
    assert registration.correlation_after > registration.correlation_before


def test_another_patients_ct_is_refused(torso):
    other = make_torso((64, 48, 80), 8.0, seed=6, n_lesions=0)
    with pytest.raises(ValueError, match="registration failed: the CTs correlate 0.[0-8]"):
        register_ct(torso.ct, other.ct)


def test_organ_doses_of_misaligned_time_points_match_the_analytic_integrals(torso):
    points = [
        TimePoint(t, _shifted(_dose_rate(torso, t), shift, 0.0), _shifted(torso.ct, shift, -1000.0))
        for t, shift in zip(TIMES_H, SHIFTS_MM, strict=True)
    ]
    # organ cores: edge voxels mix with their neighbours in each resampling of the 8 mm grid
    labels = array_from_image(torso.labels)
    cores = np.zeros_like(labels)
    for name in ("liver", "spleen"):
        cores[ndimage.binary_erosion(labels == LABELS[name], iterations=1)] = LABELS[name]
    names = {LABELS[name]: name for name in ("liver", "spleen")}
    result = absorbed_dose(points, image_from_array(cores, torso.labels), names)
    rows = {row["segment"]: row for row in result.rows}
    for name in names.values():
        rate = RATE_GY_PER_H[name]
        expected = rate * HALF_LIVES_H[name] / math.log(2)
        assert rows[name]["mean_Gy"] == pytest.approx(expected, rel=0.05), name
        assert rows[name]["effective_half_life_h"] == pytest.approx(HALF_LIVES_H[name], rel=0.05), name
    assert result.image.GetMetaData("deepdosimetry.unit") == "Gy" and len(result.registrations) == 4
    liver = array_from_image(result.image)[cores == LABELS["liver"]]
    assert np.median(liver) == pytest.approx(0.02 * 70.0 / math.log(2), rel=0.03)


def test_bad_time_points_are_refused(torso):
    rate, ct = _dose_rate(torso, 24.0), torso.ct
    with pytest.raises(ValueError, match="strictly increasing"):
        absorbed_dose([TimePoint(24.0, rate, ct), TimePoint(4.0, rate, ct)])
    with pytest.raises(ValueError, match="--half-life-h"):
        absorbed_dose([TimePoint(24.0, rate, ct)])
    with pytest.raises(ValueError, match="expected a dose rate in Gy/h or an activity in Bq/mL; the image says 'HU'"):
        absorbed_dose([TimePoint(24.0, set_unit(_dose_rate(torso, 24.0), "HU"), ct)], effective_half_life_h=50.0)
    unitless = _dose_rate(torso, 24.0)
    unitless.EraseMetaData("deepdosimetry.unit")
    with pytest.raises(ValueError, match="states no unit"):
        absorbed_dose([TimePoint(24.0, unitless, ct)], effective_half_life_h=50.0)
    single = absorbed_dose([TimePoint(24.0, rate, ct)], effective_half_life_h=70.0)
    liver = array_from_image(single.image)[array_from_image(torso.labels) == LABELS["liver"]]
    assert np.median(liver) == pytest.approx(0.02 * 70.0 / math.log(2), rel=1e-4)


def test_the_command_line_writes_the_map_table_curves_and_histograms(torso, tmp_path, capsys):
    from DosimetryCore import io
    from DosimetryCore.cli import main as cli

    argv = ["absorbed-dose"]
    for time_h, shift in zip(TIMES_H[:3], SHIFTS_MM[:3], strict=True):
        rate = io.write_image(_shifted(_dose_rate(torso, time_h), shift, 0.0), tmp_path / f"rate_{time_h:g}.nrrd")
        ct = io.write_image(_shifted(torso.ct, shift, -1000.0), tmp_path / f"ct_{time_h:g}.nrrd")
        argv += ["--timepoint", f"{time_h:g}:{rate}:{ct}"]
    seg = io.write_image(torso.labels, tmp_path / "seg.nrrd")
    out = tmp_path / "out"
    argv += ["--seg", str(seg), "--output", str(out / "dose.nrrd"), "--table", str(out / "t.csv"),
             "--curves", str(out / "c.png"), "--dvh", str(out / "h.png")]  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert {p.name for p in out.iterdir()} == {"dose.nrrd", "t.csv", "c.png", "h.png"}
    header = (out / "t.csv").read_text().splitlines()[0]
    assert "mean_Gy" in header and "uncertainty_Gy" in header and "D98%_Gy" in header
    assert "registered: shift" in capsys.readouterr().out
    backwards = [*argv[:1], *argv[3:5], *argv[1:3], "--output", str(tmp_path / "x.nrrd")]
    assert cli.main(backwards) == 2 and "strictly increasing" in capsys.readouterr().err
    no_ct = ["absorbed-dose", "--timepoint", f"24:{out / 'dose.nrrd'}:", "--half-life-h", "50", "--output",
             str(tmp_path / "x.nrrd")]  # fmt: skip
    assert cli.main(no_ct) == 2 and "the CT file is missing" in capsys.readouterr().err
    assert not (tmp_path / "x.nrrd").exists()


def test_activity_time_points_become_vdk_dose_rates(torso):
    """An activity time point gives the absorbed dose of its VDK dose rate, the same as giving that dose rate."""
    from DosimetryCore.dose import compute_dose_rate

    activity = torso.activity
    rate = compute_dose_rate(activity, torso.ct, "vdk").image
    from_activity = absorbed_dose([TimePoint(24.0, activity, torso.ct)], effective_half_life_h=60.0)
    from_rate = absorbed_dose([TimePoint(24.0, rate, torso.ct)], effective_half_life_h=60.0)
    np.testing.assert_allclose(array_from_image(from_activity.image), array_from_image(from_rate.image), rtol=1e-6)
    assert array_from_image(from_activity.image).max() > 0
    record = json.loads(from_activity.image.GetMetaData("deepdosimetry.provenance"))
    assert record["inputs"] == [{"time_h": 24.0, "unit": "Bq/mL", "dose_rate_method": "vdk"}]


def test_the_command_line_reads_times_from_the_acquisition_time(torso, tmp_path, capsys):
    from DosimetryCore import io
    from DosimetryCore.cli import main as cli
    from DosimetryCore.core.acquisition_time import set_acquisition_datetime

    argv = ["absorbed-dose", "--administered", "2026-11-30T10:00"]
    for time_h in TIMES_H[:2]:
        rate = set_acquisition_datetime(_dose_rate(torso, time_h), datetime(2026, 11, 30, 10) + timedelta(hours=time_h))
        argv += ["--timepoint", f"dicom:{io.write_image(rate, tmp_path / f'r{time_h:g}.nrrd')}:"
                 f"{io.write_image(torso.ct, tmp_path / f'ct{time_h:g}.nrrd')}"]  # fmt: skip
    argv += ["--output", str(tmp_path / "dose.nrrd"), "--no-registration"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "= 4.00 h after administration" in out and "= 24.00 h after administration" in out
    record = json.loads(io.read_image(tmp_path / "dose.nrrd").GetMetaData("deepdosimetry.provenance"))
    assert record["times_h"] == [4.0, 24.0] and record["administered"] == "2026-11-30T10:00"
    timepoints = argv[3:-3]
    late = [*argv[:2], "2026-11-30T15:00", *timepoints, "--output", str(tmp_path / "late.nrrd"), "--no-registration"]
    assert cli.main(late) == 2 and "is not after the administration" in capsys.readouterr().err
    assert cli.main(["absorbed-dose", *timepoints, "--output", str(tmp_path / "n.nrrd")]) == 2
    assert "needs --administered" in capsys.readouterr().err
    assert not (tmp_path / "late.nrrd").exists() and not (tmp_path / "n.nrrd").exists()
