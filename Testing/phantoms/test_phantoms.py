"""Tests of DosimetryCore.phantoms: synthetic torsos, random activity, augmentation (small grids, fast)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from DosimetryCore import phantoms
from DosimetryCore.core.metadata import LABEL_NAMES_KEY, PROVENANCE_KEY
from DosimetryCore.core.volume import array_from_image, image_from_array, unit_of, voxel_volume_ml
from DosimetryCore.phantoms import LABELS, Phantom, augment, make_torso, random_activity

SMALL = {"size": 64, "spacing_mm": 9.6}  # 614 mm field of view, as 128 x 4.8 mm
TINY = {"size": 48, "spacing_mm": 12.8}
HEAD_NECK = {"size": (48, 48, 64), "spacing_mm": 12.8, "salivary_glands": True}  # 819 mm along z


@pytest.fixture(scope="module")
def psma() -> Phantom:
    return make_torso(**SMALL, seed=11, tracer="PSMA", n_lesions=6, total_activity_MBq=1234.5)


@pytest.fixture(scope="module")
def head_neck() -> Phantom:
    return make_torso(**HEAD_NECK, seed=5, tracer="PSMA")


def arrays(case: Phantom) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return array_from_image(case.ct), array_from_image(case.labels), array_from_image(case.activity)


def volume_ml(case: Phantom, *names: str) -> float:
    labels = array_from_image(case.labels)
    return float(np.isin(labels, [LABELS[n] for n in names]).sum()) * voxel_volume_ml(case.labels)


def mean_activity(case: Phantom, *names: str) -> float:
    _, labels, activity = arrays(case)
    return float(activity[np.isin(labels, [LABELS[n] for n in names])].mean())


def total_MBq(image: sitk.Image) -> float:
    return float(array_from_image(image).sum(dtype=np.float64)) * voxel_volume_ml(image) / 1e6


def centroid_mm(case: Phantom, name: str) -> np.ndarray:
    """Physical (LPS, mm) centroid of a label."""
    index = np.argwhere(array_from_image(case.labels) == LABELS[name]).mean(axis=0)[::-1]
    return np.array(case.labels.TransformContinuousIndexToPhysicalPoint(index.tolist()))


# ---------------------------------------------------------------------------------------------- make_torso


def test_same_seed_is_bit_identical_and_seeds_differ():
    first, second = make_torso(**TINY, seed=3), make_torso(**TINY, seed=3)
    for a, b in zip(arrays(first), arrays(second), strict=True):
        assert a.tobytes() == b.tobytes()
    assert first.provenance == second.provenance and first.lesions == second.lesions
    other = make_torso(**TINY, seed=4)
    for a, b in zip(arrays(first), arrays(other), strict=True):
        assert not np.array_equal(a, b)


def test_geometry_types_units_and_provenance(psma):
    for image in (psma.ct, psma.labels, psma.activity):
        assert image.GetSize() == (64, 64, 64)
        assert image.GetSpacing() == pytest.approx((9.6, 9.6, 9.6))
        assert image.GetDirection() == pytest.approx(np.eye(3).ravel())
        centre = image.TransformContinuousIndexToPhysicalPoint([31.5, 31.5, 31.5])
        assert centre == pytest.approx((0.0, 0.0, 0.0), abs=1e-9)
        assert json.loads(image.GetMetaData(PROVENANCE_KEY)) == psma.provenance
    assert psma.ct.GetPixelID() == sitk.sitkFloat32 and psma.activity.GetPixelID() == sitk.sitkFloat32
    assert psma.labels.GetPixelID() == sitk.sitkUInt8
    assert unit_of(psma.activity) == "Bq/mL" and unit_of(psma.ct) == "HU"
    assert psma.provenance["seed"] == 11 and psma.provenance["parameters"]["tracer"] == "PSMA"
    stored_names = json.loads(psma.labels.GetMetaData(LABEL_NAMES_KEY))
    assert {int(k): v for k, v in stored_names.items()} == psma.label_names


def test_label_table_matches_labelmap(psma):
    labels = array_from_image(psma.labels)
    assert set(np.unique(labels)) - {0} == set(psma.label_names)
    assert all(LABELS[name] == value for value, name in psma.label_names.items())
    required = {"body", "lung_left", "lung_right", "liver", "spleen", "spine", "ribs", "pelvis", "bladder"}
    required |= {f"kidney_{side}_{part}" for side in ("left", "right") for part in ("cortex", "medulla")}
    assert required <= set(psma.label_names.values())
    assert not {"parotid_left", "submandibular_right"} & set(psma.label_names.values())


def test_orientation_is_lps(psma):
    liver, spleen = centroid_mm(psma, "liver"), centroid_mm(psma, "spleen")
    assert liver[0] < 0 < spleen[0]  # liver on the patient's right (-x), spleen on the left (+x)
    bladder, spine, lung = centroid_mm(psma, "bladder"), centroid_mm(psma, "spine"), centroid_mm(psma, "lung_left")
    assert bladder[1] < spine[1]  # bladder anterior of the spine (y toward posterior)
    assert bladder[2] < liver[2] < lung[2]  # z toward superior
    assert centroid_mm(psma, "lung_right")[0] < 0 < lung[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_organ_volumes_are_anatomical(seed):
    case = make_torso(**SMALL, seed=seed, n_lesions=0)
    assert 1000 <= volume_ml(case, "liver") <= 2500
    assert 80 <= volume_ml(case, "spleen") <= 450
    for side in ("left", "right"):
        assert 80 <= volume_ml(case, f"kidney_{side}_cortex", f"kidney_{side}_medulla") <= 300
    assert 1500 <= volume_ml(case, "lung_left", "lung_right") <= 7000
    assert 50 <= volume_ml(case, "bladder") <= 600
    assert 25_000 <= volume_ml(case, *LABELS) <= 60_000  # torso in a 614 mm field of view


def test_organs_nested_in_body(psma):
    labels = array_from_image(psma.labels)
    next_to_air = ndimage.binary_dilation(labels == 0)
    assert set(np.unique(labels[next_to_air])) <= {0, LABELS["body"]}  # only the body's skin meets air
    ct = array_from_image(psma.ct)
    assert np.all(ct[labels == 0] == phantoms.HU["air"])


def test_kidneys_have_cortex_around_medulla(psma):
    labels = array_from_image(psma.labels)
    for side in ("left", "right"):
        cortex, medulla = labels == LABELS[f"kidney_{side}_cortex"], labels == LABELS[f"kidney_{side}_medulla"]
        assert cortex.sum() > medulla.sum() > 0
        around = ndimage.binary_dilation(medulla) & ~medulla
        assert np.mean(cortex[around]) > 0.9  # the medulla is wrapped in cortex


def test_ct_numbers_per_tissue(psma):
    ct, labels, _ = arrays(psma)
    lungs = np.isin(labels, [LABELS["lung_left"], LABELS["lung_right"]])
    assert -850 < np.median(ct[lungs]) < -750
    assert np.median(ct[labels == LABELS["liver"]]) == pytest.approx(60.0)
    assert np.median(ct[labels == LABELS["kidney_left_cortex"]]) == pytest.approx(30.0)
    body = ct[labels == LABELS["body"]]
    assert np.any(body == -100.0) and np.any(body == 40.0)  # subcutaneous fat and soft tissue
    bone = ct[np.isin(labels, [LABELS["spine"], LABELS["pelvis"]])]
    assert bone.max() >= 1000 and np.any(bone == 300.0)  # cortical rim, spongy interior


def test_activity_non_negative_and_total_as_requested(psma):
    _, labels, activity = arrays(psma)
    assert activity.min() >= 0 and np.all(activity[labels == 0] == 0)
    assert total_MBq(psma.activity) == pytest.approx(1234.5, rel=1e-4)
    assert activity[labels == LABELS["body"]].min() > 0  # background everywhere in the body


def test_uptake_ordering_per_tracer():
    for seed in range(3):
        psma = make_torso(**HEAD_NECK, seed=seed, tracer="PSMA", n_lesions=0)
        dotatate = make_torso(**HEAD_NECK, seed=seed, tracer="DOTATATE", n_lesions=0)
        kidneys = ("kidney_left_cortex", "kidney_right_cortex")
        salivary = ("parotid_left", "parotid_right", "submandibular_left", "submandibular_right")
        assert mean_activity(psma, *kidneys) > mean_activity(psma, "liver") > mean_activity(psma, "body")
        assert mean_activity(psma, *salivary) > mean_activity(psma, "liver")
        assert mean_activity(dotatate, "spleen") > mean_activity(dotatate, "liver") > mean_activity(dotatate, "body")
        assert mean_activity(dotatate, *kidneys) > mean_activity(dotatate, "liver")
        assert mean_activity(dotatate, *salivary) < mean_activity(dotatate, "liver")
        assert mean_activity(psma, "kidney_left_cortex") > mean_activity(psma, "kidney_left_medulla")


def test_lesions_are_placed_and_recorded(psma):
    labels = array_from_image(psma.labels)
    assert len(psma.lesions) == 6 == len(psma.provenance["lesions"])
    for lesion in psma.lesions:
        assert lesion.site in ("liver", "bone", "lymph_node")
        assert 10.0 <= lesion.diameter_mm <= 50.0
        index = psma.labels.TransformPhysicalPointToIndex(lesion.centre_mm)
        assert labels[index[::-1]] == LABELS[f"lesion_{lesion.site}"]
    lesion_mask = np.isin(labels, [LABELS["lesion_liver"], LABELS["lesion_bone"], LABELS["lesion_lymph_node"]])
    assert mean_activity(psma, "liver") < np.mean(array_from_image(psma.activity)[lesion_mask])


def test_salivary_glands_in_head_neck_field_of_view(head_neck):
    for name in ("parotid_left", "parotid_right", "submandibular_left", "submandibular_right"):
        assert name in head_neck.label_names.values()
    assert 10 <= volume_ml(head_neck, "parotid_left", "parotid_right") <= 100
    with pytest.raises(ValueError, match="salivary_glands"):
        make_torso(128, 4.8, seed=0, salivary_glands=True)  # 614 mm cannot hold pelvis to parotids


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"size": 8}, "size"),
        ({"size": (64, 64, 40)}, "size, spacing_mm"),
        ({"size": 64.5}, "size"),
        ({"spacing_mm": -9.6}, "spacing_mm"),
        ({"spacing_mm": (9.6, 9.6)}, "spacing_mm"),
        ({"tracer": "FDG"}, "tracer"),
        ({"total_activity_MBq": -100.0}, "total_activity_MBq"),
        ({"total_activity_MBq": float("nan")}, "total_activity_MBq"),
        ({"n_lesions": -1}, "n_lesions"),
        ({"lesion_diameter_mm": (50.0, 10.0)}, "lesion_diameter_mm"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"heterogeneity": -0.1}, "heterogeneity"),
    ],
)
def test_make_torso_rejects_bad_input(kwargs, name):
    arguments = {**SMALL, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=name):
        make_torso(**arguments)


def test_tracer_name_is_case_insensitive():
    assert make_torso(**TINY, seed=1, tracer="dotatate").provenance["parameters"]["tracer"] == "DOTATATE"


# ---------------------------------------------------------------------------------------------- random_activity


def test_random_activity_reproducible_positive_and_scaled(psma):
    options = {"total_activity_MBq": 2500.0, "active_fraction": (0.05, 0.1)}
    first = random_activity(psma, 7, **options)
    assert array_from_image(first).tobytes() == array_from_image(random_activity(psma, 7, **options)).tobytes()
    assert not np.array_equal(array_from_image(first), array_from_image(random_activity(psma, 8)))
    activity, body = array_from_image(first), array_from_image(psma.labels) > 0
    assert activity.min() >= 0 and np.all(activity[~body] == 0)
    assert total_MBq(first) == pytest.approx(2500.0, rel=1e-4)
    assert unit_of(first) == "Bq/mL" and first.GetSpacing() == psma.labels.GetSpacing()
    record = json.loads(first.GetMetaData(PROVENANCE_KEY))
    assert record["seed"] == 7 and 0.05 <= record["target_active_fraction"] <= 0.1
    active = activity > 0
    assert np.mean(active[body]) == pytest.approx(record["active_fraction"])
    assert record["target_active_fraction"] <= record["active_fraction"] < 0.5
    values = activity[active]
    assert values.std() / values.mean() > 0.2  # non-uniform within the active shapes


def test_random_activity_accepts_a_mask_image():
    mask = np.zeros((24, 32, 32), dtype=np.uint8)
    mask[4:20, 6:26, 4:28] = 1
    image = random_activity(image_from_array(mask, spacing=(4.0, 4.0, 4.0)), 0, total_activity_MBq=100.0)
    activity = array_from_image(image)
    assert np.all(activity[mask == 0] == 0) and activity.max() > 0
    assert total_MBq(image) == pytest.approx(100.0, rel=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"total_activity_MBq": -1.0}, "total_activity_MBq"),
        ({"active_fraction": (0.0, 0.1)}, "active_fraction"),
        ({"active_fraction": (0.5, 1.5)}, "active_fraction"),
        ({"shape_diameter_mm": (50.0, 5.0)}, "shape_diameter_mm"),
        ({"level_range": (0.0, 2.0)}, "level_range"),
        ({"pattern_correlation_mm": 0.0}, "pattern_correlation_mm"),
    ],
)
def test_random_activity_rejects_bad_input(psma, kwargs, name):
    with pytest.raises(ValueError, match=name):
        random_activity(psma, 0, **kwargs)


def test_random_activity_rejects_empty_or_missing_body():
    empty = image_from_array(np.zeros((16, 16, 16), dtype=np.uint8))
    with pytest.raises(ValueError, match="body"):
        random_activity(empty, 0)
    with pytest.raises(ValueError, match="body"):
        random_activity(np.ones((16, 16, 16)), 0)


# ---------------------------------------------------------------------------------------------- augment


def test_augment_scales_each_organ_within_half_to_double(psma):
    still = augment(psma, 3, max_rotation_deg=0.0, max_translation_mm=0.0)
    assert np.array_equal(array_from_image(still.labels), array_from_image(psma.labels))
    assert np.array_equal(array_from_image(still.ct), array_from_image(psma.ct))
    factors = still.provenance["uptake_factors"]
    assert set(factors) == set(psma.label_names.values())
    assert all(0.5 <= f <= 2.0 for f in factors.values()) and len(set(factors.values())) == len(factors)
    labels = array_from_image(psma.labels)
    before, after = array_from_image(psma.activity), array_from_image(still.activity)
    for value, name in psma.label_names.items():
        ratio = after[labels == value].sum(dtype=np.float64) / before[labels == value].sum(dtype=np.float64)
        assert ratio == pytest.approx(factors[name], rel=1e-5)
    for lesion, moved in zip(psma.lesions, still.lesions, strict=True):
        assert moved.relative_uptake == pytest.approx(lesion.relative_uptake * factors[f"lesion_{lesion.site}"])
        assert moved.centre_mm == pytest.approx(lesion.centre_mm)


def test_augment_rotation_moves_everything_together_and_keeps_activity(psma):
    moved = augment(psma, 5, uptake_scale=(1.0, 1.0), max_translation_mm=0.0)
    angles = moved.provenance["rotation_deg"]
    assert all(-5.0 <= a <= 5.0 for a in angles) and max(abs(a) for a in angles) > 0.5
    assert total_MBq(moved.activity) == pytest.approx(total_MBq(psma.activity), rel=0.02)
    ct, labels, activity = arrays(moved)
    assert set(np.unique(labels)) <= set(np.unique(array_from_image(psma.labels)))
    assert volume_ml(moved, "liver") == pytest.approx(volume_ml(psma, "liver"), rel=0.05)
    near_body = ndimage.binary_dilation(labels > 0, np.ones((3, 3, 3), dtype=bool))
    assert np.all(activity[~near_body] == 0)  # activity moved with the body (its edge interpolated)
    assert np.median(ct[labels == 0]) == phantoms.HU["air"]


def test_augment_translation_range_and_reproducibility(psma):
    first, second = augment(psma, 9, max_translation_mm=30.0), augment(psma, 9, max_translation_mm=30.0)
    assert array_from_image(first.activity).tobytes() == array_from_image(second.activity).tobytes()
    assert first.provenance == second.provenance and first.provenance["source"] == psma.provenance
    assert all(abs(t) <= 30.0 for t in first.provenance["translation_mm"])
    organ_means = np.zeros(max(LABELS.values()) + 1)  # augmented mean uptake of each organ
    for value, name in psma.label_names.items():
        organ_means[value] = mean_activity(psma, name) * first.provenance["uptake_factors"][name]
    activity = array_from_image(first.activity).ravel()
    moved, still = array_from_image(first.labels), array_from_image(psma.labels)
    assert np.corrcoef(organ_means[moved].ravel(), activity)[0, 1] > 0.8  # uptake moved with the organs
    assert np.corrcoef(organ_means[still].ravel(), activity)[0, 1] < 0.7
    other = augment(psma, 10, max_translation_mm=30.0)
    assert not np.array_equal(array_from_image(first.activity), array_from_image(other.activity))
    assert first.provenance["uptake_factors"] != other.provenance["uptake_factors"]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"uptake_scale": (0.0, 2.0)}, "uptake_scale"),
        ({"max_rotation_deg": -1.0}, "max_rotation_deg"),
        ({"max_translation_mm": float("inf")}, "max_translation_mm"),
        ({"seed": -3}, "seed"),
    ],
)
def test_augment_rejects_bad_input(psma, kwargs, name):
    arguments = {"seed": 0, **kwargs}
    with pytest.raises(ValueError, match=name):
        augment(psma, **arguments)
    with pytest.raises(ValueError, match="case"):
        augment(psma.activity, 0)
