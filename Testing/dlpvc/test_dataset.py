"""DLPVCLib.dataset: seed-003 training cases, the dataset folder (manifest, splits, resume) and PVCDataset."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage

from DLPVCLib import cli as dlpvc_cli
from DLPVCLib import dataset
from DLPVCLib.evaluation import calibrate_iy_fwhm
from DosimetryCore import io
from DosimetryCore.cli import main as cli
from DosimetryCore.core.metadata import PROVENANCE_KEY
from DosimetryCore.imaging import simulation

# 32^3 voxels of 19.2 mm hold the torso's 500 x 360 x 610 mm; 12 views keep a case at ~0.2 s.
GRID = {"size": 32, "spacing_mm": 19.2}
FAST = replace(dataset.DEFAULT_ACQUISITION, views=12)
SEED, N = 3, 5  # splits of these five cases: train, val, test, test, train


def run_cli(monkeypatch, argv: list[str]) -> int:
    """``deepdosimetry`` with this package's commands registered as their entry points will be."""
    monkeypatch.setattr(
        cli, "_discovered_registrations",
        lambda group: [("simulate-pvc", dlpvc_cli.register_simulate_pvc)] if group == cli.ENTRY_POINT_GROUP else [],
    )
    return cli.main(argv)


def arrays(folder, stem: str) -> np.ndarray:
    return sitk.GetArrayFromImage(io.read_image(folder / f"{stem}.nrrd"))


ALL = {"reconstructions": dataset.RECONSTRUCTIONS}  # seed 003's four OSEM images


@pytest.fixture(scope="module")
def case():
    return dataset.simulate_pvc_case(11, acquisition=FAST, device="cpu", **GRID, **ALL)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("dlpvc") / "data"
    dataset.write_dataset(out, N, SEED, acquisition=FAST, device="cpu", **GRID, **ALL)
    return out


def test_case_images_units_geometry_and_provenance(case):
    assert set(case.images) == set(dataset.CASE_IMAGES)
    truth = case.images["truth"]
    for stem, image in case.images.items():
        assert image.GetSize() == (32, 32, 32) and image.GetSpacing() == pytest.approx((19.2,) * 3), stem
        assert json.loads(image.GetMetaData(PROVENANCE_KEY))["seed"] == 11
    for stem in ("truth", *dataset.RECONSTRUCTIONS):
        assert case.images[stem].GetMetaData("deepdosimetry.unit") == "Bq/mL", stem
        assert case.images[stem].GetPixelID() == sitk.sitkFloat32
    total_MBq = sitk.GetArrayFromImage(truth).sum(dtype=np.float64) * 19.2**3 / 1000 / 1e6
    assert total_MBq == pytest.approx(case.provenance["total_activity_MBq"], rel=1e-4)
    assert 300 <= case.provenance["total_activity_MBq"] <= 3000
    assert case.provenance["seeds"]["spect_noise"] == simulation.noise_seeds(11)[1]
    body = sitk.GetArrayFromImage(case.images["ct"]) > -900
    assert 0.01 <= np.mean(sitk.GetArrayFromImage(truth)[body] > 0) <= 0.12  # active share of the body
    for stem in dataset.RECONSTRUCTIONS:  # OSEM keeps the total activity (no scatter simulated)
        assert sitk.GetArrayFromImage(case.images[stem]).sum() == pytest.approx(
            sitk.GetArrayFromImage(truth).sum(), rel=0.05
        ), stem


def test_masks_are_the_connected_regions_of_the_truth_largest_first(case):
    truth = sitk.GetArrayFromImage(case.images["truth"])
    masks = sitk.GetArrayFromImage(case.images["masks"])
    assert masks.dtype == np.uint32
    np.testing.assert_array_equal(masks > 0, truth > 0)
    _, count = ndimage.label(truth > 0)
    sizes = np.bincount(masks.ravel())[1:]
    assert masks.max() == count == case.provenance["n_regions"] and count > 1
    assert np.all(np.diff(sizes) <= 0)
    for label in range(1, count + 1):
        assert ndimage.label(masks == label)[1] == 1  # each region is one connected piece


def test_same_seed_same_case_other_seed_other_case(case):
    again = dataset.simulate_pvc_case(11, acquisition=FAST, device="cpu", **GRID, **ALL)
    for stem in dataset.CASE_IMAGES:
        np.testing.assert_array_equal(
            sitk.GetArrayFromImage(case.images[stem]), sitk.GetArrayFromImage(again.images[stem])
        )
    other = dataset.simulate_pvc_case(12, acquisition=FAST, device="cpu", **GRID)
    assert not np.array_equal(
        sitk.GetArrayFromImage(case.images["truth"]), sitk.GetArrayFromImage(other.images["truth"])
    )


def test_case_seeds_and_splits_depend_on_the_seed_alone():
    assert dataset.case_seeds(SEED, 3) == dataset.case_seeds(SEED, 40)[:3]
    assert len(set(dataset.case_seeds(SEED, 40))) == 40 and dataset.case_seeds(4, 3) != dataset.case_seeds(SEED, 3)
    seeds = dataset.case_seeds(0, 4000)
    splits = [dataset.split_of(s) for s in seeds]
    assert splits == [dataset.split_of(s) for s in seeds]
    shares = [splits.count(name) / len(splits) for name in dataset.SPLITS]
    assert shares == pytest.approx(dataset.SPLIT_FRACTIONS, abs=0.02)
    assert {dataset.split_of(s, (0.0, 0.0, 1.0)) for s in seeds[:50]} == {"test"}
    with pytest.raises(ValueError, match="split_fractions"):
        dataset.split_of(1, (0.5, 0.5, 0.5))


def test_manifest_records_the_dataset(folder):
    manifest = dataset.read_manifest(folder)
    assert manifest["dataset_seed"] == SEED and manifest["n"] == N
    assert manifest["size"] == 32 and manifest["spacing_mm"] == 19.2 and manifest["acquisition"]["views"] == 12
    assert manifest["total_activity_range_MBq"] == [300.0, 3000.0]
    assert [case["id"] for case in manifest["cases"]] == [f"case_{i:05d}" for i in range(N)]
    assert [case["seed"] for case in manifest["cases"]] == dataset.case_seeds(SEED, N)
    assert [case["split"] for case in manifest["cases"]] == ["train", "val", "test", "test", "train"]
    assert manifest["split_counts"] == {"train": 2, "val": 1, "test": 2}
    assert manifest["units"]["osem_rr_noisy"] == "Bq/mL"
    for case in manifest["cases"]:
        record = json.loads((folder / case["id"] / dataset.CASE_RECORD).read_text())
        assert record["seed"] == case["seed"] and record["wall_time_s"] > 0
        assert sorted(p.name for p in (folder / case["id"]).iterdir()) == sorted(
            [dataset.CASE_RECORD, *(f"{stem}.nrrd" for stem in dataset.CASE_IMAGES)]
        )
    assert not list(folder.glob(".*"))  # no temporary folder or file left
    assert len(dataset.manifest_sha256(folder)) == 64


def test_resume_skips_complete_cases_and_redoes_partial_ones(folder, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(folder, copy)
    reference = arrays(folder / "case_00001", "osem_rr_noisy")
    (copy / "case_00001" / "osem_rr_noisy.nrrd").unlink()  # an incomplete case folder
    shutil.move(copy / "case_00003", copy / ".case_00003.partial")  # left by a run interrupted while writing
    (copy / ".case_00003.partial" / "truth.nrrd").write_text("half written")
    untouched = (copy / "case_00000" / "truth.nrrd").stat().st_mtime_ns
    result = dataset.write_dataset(copy, N + 1, SEED, acquisition=FAST, device="cpu", **GRID, **ALL)
    assert sorted(result.simulated) == ["case_00001", "case_00003", "case_00005"]
    assert result.skipped == ["case_00000", "case_00002", "case_00004"]
    assert (copy / "case_00000" / "truth.nrrd").stat().st_mtime_ns == untouched
    np.testing.assert_array_equal(arrays(copy / "case_00001", "osem_rr_noisy"), reference)
    np.testing.assert_array_equal(arrays(copy / "case_00003", "truth"), arrays(folder / "case_00003", "truth"))
    assert not list(copy.glob(".*"))
    manifest = dataset.read_manifest(copy)
    assert manifest["n"] == N + 1 and manifest["cases"][:N] == dataset.read_manifest(folder)["cases"]
    again = dataset.write_dataset(copy, N + 1, SEED, acquisition=FAST, device="cpu", **GRID, **ALL)
    assert again.simulated == {} and len(again.skipped) == N + 1


def test_another_dataset_in_the_folder_is_refused(folder):
    before = (folder / dataset.MANIFEST).read_text()
    with pytest.raises(ValueError, match=r"holds another dataset \(size"):
        dataset.write_dataset(folder, N, SEED, size=40, spacing_mm=16.0, acquisition=FAST, device="cpu", **ALL)
    with pytest.raises(ValueError, match="dataset_seed"):
        dataset.write_dataset(folder, N, SEED + 1, acquisition=FAST, device="cpu", **GRID, **ALL)
    assert (folder / dataset.MANIFEST).read_text() == before


def test_a_field_of_view_too_small_is_refused_before_writing(tmp_path):
    with pytest.raises(ValueError):
        dataset.write_dataset(tmp_path / "small", 2, 0, size=32, spacing_mm=4.8, acquisition=FAST, device="cpu")
    assert not (tmp_path / "small").exists()


def test_two_workers_write_the_same_cases(folder, tmp_path):
    result = dataset.write_dataset(tmp_path / "data", 2, SEED, acquisition=FAST, workers=2, device="cpu", **GRID, **ALL)
    assert sorted(result.simulated) == ["case_00000", "case_00001"]
    for case_id in result.simulated:
        for stem in ("truth", "masks"):
            np.testing.assert_array_equal(arrays(tmp_path / "data" / case_id, stem), arrays(folder / case_id, stem))
        # A worker runs torch with fewer threads, and float32 sums in another order differ by about 1e-6
        # relative; the same thread count gives bit-identical reconstructions.
        recon, reference = arrays(tmp_path / "data" / case_id, "osem_rr_noise_free"), arrays(folder / case_id,
                                                                                            "osem_rr_noise_free")
        np.testing.assert_allclose(recon, reference, rtol=1e-4, atol=1e-5 * float(reference.max()))


def test_pvc_dataset_yields_float32_activity_pairs(folder):
    train = dataset.PVCDataset(folder, "train")
    assert len(train) == 2 and train.case_ids == ["case_00000", "case_00004"]
    source, target = train[1]
    assert source.shape == target.shape == (1, 32, 32, 32)
    assert source.dtype == target.dtype == torch.float32
    np.testing.assert_array_equal(source[0].numpy(), arrays(folder / "case_00004", "osem_rr_noisy"))
    np.testing.assert_array_equal(target[0].numpy(), arrays(folder / "case_00004", "truth"))
    assert target.max() > 1e3  # Bq/mL, not normalised
    noise_free, _ = dataset.PVCDataset(folder, "test", input_key="osem_norr_noise_free")[0]
    np.testing.assert_array_equal(noise_free[0].numpy(), arrays(folder / "case_00002", "osem_norr_noise_free"))


def test_pvc_dataset_reports_bad_input(folder, tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        dataset.PVCDataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="holds no manifest.json"):
        dataset.PVCDataset(tmp_path)
    with pytest.raises(ValueError, match="split: unknown 'validation'"):
        dataset.PVCDataset(folder, "validation")
    with pytest.raises(ValueError, match="input: unknown reconstruction 'osem'"):
        dataset.PVCDataset(folder, input_key="osem")
    only_train = tmp_path / "only_train"
    dataset.write_dataset(only_train, 1, SEED, acquisition=FAST, split_fractions=(1, 0, 0), device="cpu", **GRID)
    with pytest.raises(ValueError, match=r"the 'val' split of .* is empty"):
        dataset.PVCDataset(only_train, "val")
    (only_train / "case_00000" / "masks.nrrd").unlink()
    with pytest.raises(ValueError, match="case_00000.*run simulate-pvc again"):
        dataset.PVCDataset(only_train, "train")


def test_simulate_pvc_command(monkeypatch, tmp_path, capsys):
    out = tmp_path / "data"
    arguments = ["simulate-pvc", "--out", str(out), "--n", "2", "--seed", str(SEED), "--size", "32",
                 "--spacing-mm", "19.2", "--views", "12", "--device", "cpu"]
    assert run_cli(monkeypatch, arguments) == 0
    printed = capsys.readouterr().out
    assert "simulated 2 case(s)" in printed and "splits: train 1, val 1, test 0" in printed
    assert "warning: empty split(s) test" in printed
    manifest = dataset.read_manifest(out)
    assert manifest["acquisition"]["views"] == 12 and manifest["acquisition"]["rr_subsets"] == 6
    assert run_cli(monkeypatch, arguments) == 0
    assert "simulated 0 case(s), 2 already complete" in capsys.readouterr().out
    assert run_cli(monkeypatch, [*arguments[:-4], "--views", "24"]) == 2
    assert "holds another dataset (acquisition differ)" in capsys.readouterr().err


def test_flips_mirror_input_and_target_together_and_follow_the_torch_seed(folder):
    plain = dataset.PVCDataset(folder, "train")
    flipped = dataset.PVCDataset(folder, "train", flips=True)
    source, target = plain[0]
    seen = set()
    for draw in range(12):
        torch.manual_seed(draw)
        mirrored_source, mirrored_target = flipped[0]
        matches = [
            combo for combo in [(), (1,), (2,), (3,), (1, 2), (1, 3), (2, 3), (1, 2, 3)]
            if torch.equal(mirrored_target, target.flip(combo) if combo else target)
            and torch.equal(mirrored_source, source.flip(combo) if combo else source)
        ]
        assert matches, f"draw {draw}: input and target were not mirrored alike"
        seen.add(matches[0])
        torch.manual_seed(draw)
        again_source, again_target = flipped[0]
        assert torch.equal(again_source, mirrored_source) and torch.equal(again_target, mirrored_target)
    assert len(seen) >= 4  # 12 draws of 8 equally likely mirrorings
    assert float(mirrored_source.sum()) == pytest.approx(float(source.sum()), rel=1e-6)


def test_split_fractions_option_makes_a_held_out_set(monkeypatch, tmp_path, capsys):
    out = tmp_path / "held_out"
    arguments = ["simulate-pvc", "--out", str(out), "--n", "3", "--seed", str(SEED), "--size", "32",
                 "--spacing-mm", "19.2", "--views", "12", "--device", "cpu", "--split-fractions", "0", "0", "1"]
    assert run_cli(monkeypatch, arguments) == 0
    assert "splits: train 0, val 0, test 3" in capsys.readouterr().out
    assert dataset.read_manifest(out)["split_fractions"] == [0.0, 0.0, 1.0]
    assert run_cli(monkeypatch, [*arguments[:-3], "0.5", "0.4", "0.4"]) == 2
    assert "summing to 1" in capsys.readouterr().err


def test_by_default_a_case_holds_only_what_training_and_evaluation_read_and_the_same_images(case, folder, tmp_path):
    lean = dataset.simulate_pvc_case(11, acquisition=FAST, device="cpu", **GRID)
    assert dataset.DEFAULT_RECONSTRUCTIONS == ("osem_rr_noisy",)
    assert set(lean.images) == {"truth", "ct", "masks", "osem_rr_noisy"}
    for stem in lean.images:  # the noise does not depend on which images are made
        np.testing.assert_array_equal(
            sitk.GetArrayFromImage(lean.images[stem]), sitk.GetArrayFromImage(case.images[stem]), err_msg=stem
        )
    out = tmp_path / "lean"
    dataset.write_dataset(out, N, SEED, acquisition=FAST, device="cpu", **GRID)
    manifest = dataset.read_manifest(out)
    assert manifest["reconstructions"] == ["osem_rr_noisy"]
    assert set(manifest["images"]) == set(manifest["units"]) == set(dataset.case_images(manifest, "val"))
    for case_entry in manifest["cases"]:  # val cases also hold the noise-free twin for IY-PVC's calibration
        extra = ["osem_rr_noise_free"] if case_entry["split"] == "val" else []
        assert dataset.case_images(manifest, case_entry["split"]) == ("truth", "ct", "masks", *extra, "osem_rr_noisy")
        assert sorted(p.name for p in (out / case_entry["id"]).iterdir()) == sorted(
            [dataset.CASE_RECORD, *(f"{stem}.nrrd" for stem in dataset.case_images(manifest, case_entry["split"]))]
        )
    for stem in ("osem_rr_noise_free", "osem_rr_noisy"):  # case_00001 is a val case
        np.testing.assert_array_equal(arrays(out / "case_00001", stem), arrays(folder / "case_00001", stem))
    assert "--reconstructions" not in dataset.simulate_command(manifest)
    with pytest.raises(ValueError, match="train cases of .* hold only osem_rr_noisy, not osem_norr_noisy"):
        dataset.PVCDataset(out, input_key="osem_norr_noisy")
    with pytest.raises(ValueError, match="train cases of .* hold no 'osem_rr_noise_free'"):
        dataset.PVCDataset(out).image(0, "osem_rr_noise_free")
    assert dataset.PVCDataset(out, "val", "osem_rr_noise_free").image(0, "osem_rr_noise_free").GetSize() == (32,) * 3
    assert calibrate_iy_fwhm(out, "osem_rr_noisy")[0] > 0


def test_a_dataset_of_all_four_keeps_its_manifest_hash_and_its_command(folder):
    manifest = dataset.read_manifest(folder)
    assert "reconstructions" not in manifest  # as written before datasets could hold fewer images
    assert dataset.manifest_reconstructions(manifest) == dataset.RECONSTRUCTIONS
    assert dataset.simulate_command(manifest).endswith("--reconstructions " + " ".join(dataset.RECONSTRUCTIONS))
    with pytest.raises(ValueError, match="reconstructions: expected one or more of"):
        simulation.check_reconstructions(["osem_rr"])


def test_the_iy_calibration_needs_the_noise_free_twin(tmp_path):
    out = tmp_path / "noise_free_only"
    dataset.write_dataset(
        out, 2, SEED, acquisition=FAST, device="cpu", reconstructions=["osem_norr_noise_free"], **GRID
    )  # fmt: skip
    assert dataset.PVCDataset(out, "val", "osem_norr_noise_free").input_key == "osem_norr_noise_free"
    with pytest.raises(ValueError, match="holds no osem_rr_noise_free.*--iy-fwhm-mm"):
        calibrate_iy_fwhm(out, "osem_rr_noisy")
