"""DLPVCLib.dataset.activity_kinds: the random, torso and warm cases, their regions, totals and manifests."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk

from DLPVCLib import dataset
from DLPVCLib.dataset import activity_kinds
from DosimetryCore import phantoms

GRID = {"size": 32, "spacing_mm": 19.2}
FAST = replace(dataset.DEFAULT_ACQUISITION, views=12)
SEED = 17


@pytest.fixture(scope="module")
def cases():
    return {kind: dataset.simulate_pvc_case(SEED, acquisition=FAST, kind=kind, device="cpu", **GRID)
            for kind in dataset.CASE_KINDS}  # fmt: skip


def arrays(case, stem: str) -> np.ndarray:
    return sitk.GetArrayFromImage(case.images[stem])


def test_every_kind_holds_the_drawn_total_in_the_same_body(cases):
    totals = {kind: arrays(case, "truth").sum() * 19.2**3 / 1e9 for kind, case in cases.items()}
    drawn = cases["random"].provenance["total_activity_MBq"]
    for kind, case in cases.items():
        assert case.provenance["kind"] == kind
        assert totals[kind] == pytest.approx(drawn, rel=1e-4), kind
        assert np.array_equal(arrays(case, "ct"), arrays(cases["random"], "ct")) or kind == "torso"


def test_random_is_seed_003s_case_unchanged(cases):
    truth = arrays(cases["random"], "truth")
    body = sitk.GetArrayFromImage(phantoms.make_torso(32, 19.2, seed=dataset.case_sub_seeds(SEED)["anatomy"]).labels)
    assert (truth[body == 0] == 0).all() and 0 < (truth > 0).mean() < 0.1
    assert np.array_equal(arrays(cases["random"], "masks"), sitk.GetArrayFromImage(dataset.region_labelmap(
        cases["random"].images["truth"])))  # fmt: skip


def test_warm_puts_activity_in_the_whole_body_and_the_body_is_one_more_region(cases):
    truth, masks = arrays(cases["warm"], "truth"), arrays(cases["warm"], "masks")
    shapes = arrays(cases["random"], "masks")
    inside = arrays(cases["warm"], "ct") > -900
    assert (truth[inside] > 0).mean() > 0.95
    assert masks.max() == shapes.max() + 1
    assert np.array_equal(masks[shapes > 0], shapes[shapes > 0])
    low, high = activity_kinds.WARM_BACKGROUND
    assert low <= cases["warm"].provenance["background_over_active_mean"] <= high
    background = truth[masks == masks.max()]
    assert float(background.std()) <= 1e-3 * float(background.mean())  # uniform


def test_torso_regions_are_the_phantoms_labels_with_scaled_uptakes(cases):
    case = cases["torso"]
    truth, masks = arrays(case, "truth"), arrays(case, "masks")
    assert case.provenance["tracer"] in phantoms.TRACERS
    low, high = activity_kinds.TORSO_LESIONS
    assert low <= case.provenance["n_lesions"] <= high
    assert set(np.unique(masks)) >= {0, phantoms.LABELS["body"], phantoms.LABELS["liver"]}
    assert (truth[masks == 0] == 0).all() and (truth[masks > 0] > 0).all()
    scales = case.provenance["uptake_scale"]
    assert all(activity_kinds.ORGAN_UPTAKE_SCALE[0] <= s <= activity_kinds.ORGAN_UPTAKE_SCALE[1]
               for s in scales.values())  # fmt: skip
    assert {"liver", "body"} <= set(scales)


def test_a_kind_is_recorded_in_the_manifest_and_its_command_and_an_unknown_kind_is_refused(tmp_path):
    manifest = dataset.build_manifest(3, 5, 32, 19.2, FAST, kind="torso")
    assert manifest["kind"] == "torso" and dataset.simulate_command(manifest).endswith("--kind torso")
    assert "kind" not in dataset.build_manifest(3, 5, 32, 19.2, FAST)  # seed 003's manifests keep their hash
    with pytest.raises(ValueError, match="kind: unknown case kind 'patient'"):
        dataset.simulate_pvc_case(SEED, acquisition=FAST, kind="patient", device="cpu", **GRID)
    with pytest.raises(ValueError, match="kind"):
        dataset.write_dataset(tmp_path / "d", 2, 5, acquisition=FAST, kind="blobs", device="cpu", **GRID)
