"""The two training sets of PlanarTo3D, built in memory (a 9.6 mm sample is 2.3 MB; a few hundred fit in RAM).

- :func:`population_samples`: the generic model's synthetic population: virtual patients of the project's
  torso phantom (177Lu-PSMA and -DOTATATE, lesions, random organ uptakes), each seen in a few variations
  (:func:`PlanarTo3DLib.data.vary`), with their planar images at the camera's own count level.
- :func:`patient_samples`: Lopez-Montes et al.'s patient-specific set: N variations of ONE patient's
  pre-therapy PET within that patient's CT, with planar images at the patient's measured count level.

Each sample is (input (C, z, y, x), target (1, z, y, x)) in the units of :mod:`PlanarTo3DLib.data`; Poisson
noise, variations and phantoms are drawn from the seed, so the same seed gives the same set.
"""

from __future__ import annotations

import numpy as np
import torch

from DosimetryCore.core.progress import ProgressCallback, no_progress
from DosimetryCore.core.volume import array_from_image
from DosimetryCore.phantoms import make_torso

from .data import (
    DEFAULT_CAMERA,
    GRID_SHAPE_ZYX,
    GRID_SPACING_MM,
    PlanarCamera,
    activity_share,
    move_like,
    mu_map,
    network_input,
    planar_images,
    pre_therapy_pet,
    vary,
)

TRACERS = ("PSMA", "DOTATATE")
TOTAL_ACTIVITY_MBQ = (1000.0, 7000.0)
"""Activity in the field at imaging time of the population's virtual patients (MBq)."""


def virtual_patient(seed: int, tracer: str | None = None) -> dict[str, np.ndarray | str | float]:
    """A torso phantom on the PlanarTo3D grid: activity (Bq/mL), HU, labels, label names, tracer."""
    rng = np.random.default_rng(seed)
    tracer = tracer or str(rng.choice(TRACERS))
    total = float(rng.uniform(*TOTAL_ACTIVITY_MBQ))
    phantom = make_torso(GRID_SHAPE_ZYX[::-1], GRID_SPACING_MM, seed=seed, tracer=tracer,
                         n_lesions=int(rng.integers(1, 6)), total_activity_MBq=total)  # fmt: skip
    return {
        "activity": array_from_image(phantom.activity).astype(np.float32),
        "hu": array_from_image(phantom.ct).astype(np.float32),
        "labels": array_from_image(phantom.labels).astype(np.int32),
        "names": dict(phantom.label_names),
        "tracer": tracer,
        "total_activity_MBq": total,
    }


def _sample(activity: np.ndarray, hu: np.ndarray, camera: PlanarCamera, total_counts, seed: int, pet=None):
    mu = mu_map(hu, camera)
    planar = planar_images(activity, mu, camera, total_counts=total_counts, seed=seed)
    return network_input(planar, mu, pet), activity_share(activity)[None]


def population_samples(
    n_patients: int,
    variations: int,
    seed: int,
    camera: PlanarCamera = DEFAULT_CAMERA,
    progress: ProgressCallback | None = None,
    pet_conditioning: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """``n_patients`` virtual patients x (the patient itself + ``variations`` variations); returns (inputs,
    targets, patient seeds). With ``pet_conditioning`` every patient also gets a pre-therapy PET unlike its
    truth (:func:`PlanarTo3DLib.data.pre_therapy_pet`, its own random stream), the fourth input channel, moved
    with the patient in each variation."""
    report = progress or no_progress
    children = np.random.SeedSequence(seed).spawn(n_patients)
    seeds = [int(child.generate_state(1)[0]) for child in children]
    inputs, targets = [], []
    for index, patient_seed in enumerate(seeds):
        report(index / n_patients, f"virtual patient {index + 1}/{n_patients}")
        patient = virtual_patient(patient_seed)
        rng = np.random.default_rng(patient_seed + 1)
        pet = None
        if pet_conditioning:
            pet, _ = pre_therapy_pet(patient["activity"], patient["labels"], np.random.default_rng(patient_seed + 2))
        for variation in range(variations + 1):
            condition = pet
            if variation == 0:
                activity, hu = patient["activity"], patient["hu"]
            else:
                activity, hu, drawn = vary(patient["activity"], patient["hu"], patient["labels"], rng)
                condition = None if pet is None else move_like(pet, drawn)
            x, y = _sample(activity, hu, camera, None, int(rng.integers(2**31)), condition)
            inputs.append(x)
            targets.append(y)
    report(1.0, "population ready")
    return torch.from_numpy(np.stack(inputs)), torch.from_numpy(np.stack(targets)), seeds


def patient_samples(
    pet: np.ndarray,
    hu: np.ndarray,
    labels: np.ndarray,
    n: int,
    seed: int,
    total_counts: float,
    camera: PlanarCamera = DEFAULT_CAMERA,
    progress: ProgressCallback | None = None,
    pet_conditioning: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` variations of one patient's PET (any tracer; only its distribution matters) within its CT, each
    projected with Poisson noise at ``total_counts`` (the measured anterior + posterior total); with
    ``pet_conditioning`` the PET itself, moved with the variation, is the fourth input channel."""
    report = progress or no_progress
    rng = np.random.default_rng(seed)
    inputs, targets = [], []
    for index in range(n):
        report(index / n, f"patient variation {index + 1}/{n}")
        activity, moved_hu, drawn = vary(pet, hu, labels, rng)
        condition = move_like(pet, drawn) if pet_conditioning else None
        x, y = _sample(activity, moved_hu, camera, total_counts, int(rng.integers(2**31)), condition)
        inputs.append(x)
        targets.append(y)
    report(1.0, "patient dataset ready")
    return torch.from_numpy(np.stack(inputs)), torch.from_numpy(np.stack(targets))
