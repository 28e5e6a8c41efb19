"""The kinds of true activity a DL-PVC case can hold, and the IY-PVC regions of each.

- ``random``: seed 003's random shapes in a cold body (:func:`DosimetryCore.phantoms.random_activity`); the
  regions are the connected components of the active voxels.
- ``torso``: a patient-like 177Lu-PSMA or -DOTATATE torso (:func:`DosimetryCore.phantoms.make_torso`: liver,
  spleen, kidneys with cortex and medulla, bladder, bone, lesions of 1-5 cm, low uptake everywhere else in the
  body), each organ's uptake further multiplied by U(:data:`ORGAN_UPTAKE_SCALE`) (the torso's anatomy, lesion
  sites and sizes vary with the seed); the regions are the phantom's labels, as a CT segmentation gives them.
- ``warm``: random shapes over a warm body: the shapes of ``random`` plus a uniform concentration in the whole
  body of a fraction log-U(:data:`WARM_BACKGROUND`) of the shapes' mean concentration; the regions are the
  shapes' components and the rest of the body.

Seed 003's shapes alone taught the network that activity sits in compact blobs in a cold body, which made
patient images worse (issue 16); the other two kinds show it uptake everywhere in the body.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from DLPVCLib.dataset.layout import ACTIVE_FRACTION, SHAPE_DIAMETER_MM
from DosimetryCore import phantoms
from DosimetryCore.core.metadata import QUANTITY_KEY
from DosimetryCore.core.provenance import read as read_provenance
from DosimetryCore.core.volume import array_from_image, image_from_array, set_unit

CASE_KINDS = ("random", "torso", "warm")
"""What a case's true activity is (see the module docstring)."""

ORGAN_UPTAKE_SCALE = (0.5, 2.0)
"""``torso``: every label's uptake is multiplied by a factor drawn uniformly from this range (issue 16)."""

TORSO_LESIONS = (0, 6)
"""``torso``: the number of lesions, drawn uniformly from this range (inclusive), of 10-50 mm diameter."""

TORSO_LESION_DIAMETER_MM = (10.0, 50.0)

WARM_BACKGROUND = (0.02, 0.2)
"""``warm``: body concentration over the shapes' mean concentration, drawn log-uniformly."""


def check_kind(kind: str) -> str:
    """``kind`` if it is one of :data:`CASE_KINDS`; ValueError otherwise."""
    if kind not in CASE_KINDS:
        raise ValueError(f"kind: unknown case kind {kind!r}; choose one of {', '.join(CASE_KINDS)}")
    return kind


def region_labelmap(truth: sitk.Image) -> sitk.Image:
    """Regions of the true activity for iterative Yang PVC: connected components of ``truth > 0``.

    :func:`DosimetryCore.phantoms.random_activity` does not return the masks of its random shapes,
    so the regions are taken from the truth itself (seed 003 likewise gave IY-PVC the ground-truth
    activity mask): every face-connected (6-neighbour) component of the active voxels is one
    region, labelled 1..K by size, largest first; label 0 is the inactive rest. Touching shapes
    form one region. Returns a uint32 labelmap on the truth's grid.
    """
    return _labelmap(_components(array_from_image(truth) > 0), truth, "regions of the true activity (components)")


def _components(active: np.ndarray) -> np.ndarray:
    """Face-connected components of ``active``, labelled 1..K by size, largest first (uint32)."""
    components, count = ndimage.label(active)
    sizes = np.bincount(components.ravel(), minlength=count + 1)[1:]
    relabel = np.zeros(count + 1, dtype=np.uint32)
    relabel[1 + np.argsort(-sizes, kind="stable")] = np.arange(1, count + 1, dtype=np.uint32)
    return relabel[components]


def _labelmap(values: np.ndarray, reference: sitk.Image, quantity: str) -> sitk.Image:
    image = image_from_array(values.astype(np.uint32), reference)
    image.SetMetaData(QUANTITY_KEY, quantity)
    return image


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _with_total(values: np.ndarray, total_MBq: float, reference: sitk.Image) -> sitk.Image:
    voxel_ml = float(np.prod(reference.GetSpacing())) / 1000.0
    scaled = values * (total_MBq * 1e6 / (float(values.sum()) * voxel_ml))
    return set_unit(image_from_array(scaled.astype(np.float32), reference), "Bq/mL", "activity concentration")


def random_case(body: phantoms.Phantom, seed: int, total_MBq: float) -> tuple[sitk.Image, sitk.Image, dict]:
    """``random``: (truth, regions, sampled values) of seed 003's shapes in ``body``."""
    truth = phantoms.random_activity(body, seed, total_activity_MBq=total_MBq, active_fraction=ACTIVE_FRACTION,
                                     shape_diameter_mm=SHAPE_DIAMETER_MM)  # fmt: skip
    record = read_provenance(truth)
    return truth, region_labelmap(truth), {key: record[key] for key in ("active_fraction", "n_shapes")}


def warm_case(body: phantoms.Phantom, seed: int, total_MBq: float) -> tuple[sitk.Image, sitk.Image, dict]:
    """``warm``: (truth, regions, sampled values): seed 003's shapes plus a warm body."""
    shapes, regions, sampled = random_case(body, seed, total_MBq)
    values = array_from_image(shapes).astype(np.float64)
    inside = array_from_image(body.labels) > 0
    active = values > 0
    background = _log_uniform(np.random.default_rng([seed, 1]), *WARM_BACKGROUND)
    values[inside] += background * float(values[active].mean())
    labels = array_from_image(regions).copy()
    labels[inside & ~active] = labels.max() + 1
    truth = _with_total(values, total_MBq, shapes)
    return truth, _labelmap(labels, shapes, "regions: shape components, then the body"), {
        **sampled, "background_over_active_mean": background,
    }  # fmt: skip


def torso_case(
    size: int, spacing_mm: float, anatomy_seed: int, seed: int, total_MBq: float
) -> tuple[phantoms.Phantom, sitk.Image, sitk.Image, dict]:
    """``torso``: (phantom, truth, regions, sampled values) of a patient-like torso with augmented uptakes."""
    rng = np.random.default_rng(seed)
    tracer = str(rng.choice(phantoms.TRACERS))
    n_lesions = int(rng.integers(TORSO_LESIONS[0], TORSO_LESIONS[1] + 1))
    phantom = phantoms.make_torso(
        size, spacing_mm, seed=anatomy_seed, tracer=tracer, n_lesions=n_lesions,
        lesion_diameter_mm=TORSO_LESION_DIAMETER_MM, total_activity_MBq=total_MBq,
    )  # fmt: skip
    labels = array_from_image(phantom.labels)
    factors = rng.uniform(*ORGAN_UPTAKE_SCALE, size=int(labels.max()) + 1)
    factors[0] = 0.0
    values = array_from_image(phantom.activity).astype(np.float64) * factors[labels]
    truth = _with_total(values, total_MBq, phantom.activity)
    regions = _labelmap(labels, phantom.labels, "regions: the phantom's labels")
    present = {name: float(factors[value]) for name, value in phantoms.LABELS.items() if np.any(labels == value)}
    return phantom, truth, regions, {"tracer": tracer, "n_lesions": n_lesions, "uptake_scale": present}


RC_ORGANS = {
    "liver": ("liver",),
    "spleen": ("spleen",),
    "kidney_right": ("kidney_right_cortex", "kidney_right_medulla"),
    "kidney_left": ("kidney_left_cortex", "kidney_left_medulla"),
    "bladder": ("bladder",),
}
"""``torso``: the organs whose recovery coefficient the evaluation reports, as unions of phantom labels."""

LESION_LABELS = ("lesion_liver", "lesion_bone", "lesion_lymph_node", "lesion_lung")

MIN_LESION_ML = 1.0
"""``torso``: lesions smaller than this (mL) get no recovery coefficient: below a voxel of the 9.6 mm grid
(0.88 mL) a mean over the lesion's voxels is mostly its neighbours."""


def recovery_segments(masks: np.ndarray, voxel_ml: float) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``torso``: (organs, lesions) as name -> boolean mask, from the case's ``masks`` (the phantom's labels,
    array (z, y, x)); organs present in the case, and each face-connected lesion of at least
    :data:`MIN_LESION_ML` as ``lesion <k>``."""
    labels = phantoms.LABELS
    organs = {name: np.isin(masks, [labels[m] for m in members]) for name, members in RC_ORGANS.items()}
    components, count = ndimage.label(np.isin(masks, [labels[name] for name in LESION_LABELS]))
    sizes = np.bincount(components.ravel(), minlength=count + 1) * voxel_ml
    kept = [index for index in range(1, count + 1) if sizes[index] >= MIN_LESION_ML]
    lesions = {f"lesion {k}": components == index for k, index in enumerate(kept, start=1)}
    return {name: mask for name, mask in organs.items() if mask.any()}, lesions
