"""Seeds and splits of a DL-PVC dataset: every case's seed, its sub-seeds and its split follow from the dataset seed."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np

from DLPVCLib.dataset.layout import _SPLIT_SALT, SPLIT_FRACTIONS
from DosimetryCore.core.validation import check_seed
from DosimetryCore.imaging import simulation


def case_seeds(seed: int, n: int) -> list[int]:
    """The seeds of cases 0..n-1 of a dataset seeded with ``seed``.

    Case ``i``'s seed is child ``i`` of ``numpy.random.SeedSequence(seed)``: it does not depend on
    ``n``, so a larger dataset with the same seed starts with the same cases.
    """
    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(check_seed(seed)).spawn(n)]


def case_sub_seeds(case_seed: int) -> dict[str, int]:
    """Independent seeds of one case's random parts, all derived from its seed.

    ``spect_noise`` is :func:`DosimetryCore.imaging.simulation.noise_seeds`'s SPECT seed (children 0 and 1
    of ``SeedSequence(case_seed)`` are the noise seeds); ``anatomy``, ``activity`` and
    ``total_activity`` are children 2, 3 and 4.
    """
    children = np.random.SeedSequence(check_seed(case_seed, "case seed")).spawn(5)
    anatomy, activity, total = (int(child.generate_state(1)[0]) for child in children[2:])
    return {
        "anatomy": anatomy,
        "activity": activity,
        "total_activity": total,
        "spect_noise": simulation.noise_seeds(case_seed)[1],
    }


def split_of(case_seed: int, fractions: Sequence[float] = SPLIT_FRACTIONS) -> str:
    """The split (train, val or test) of a case, a function of its seed alone.

    A number u in [0, 1) is taken from the sha256 of the seed; the case is ``train`` when
    u < fractions[0], ``val`` when u < fractions[0] + fractions[1], else ``test``. So a case never
    changes split when a dataset grows, when cases are simulated in another order, or on resume.
    """
    train, val, _ = _check_fractions(fractions)
    digest = hashlib.sha256(f"{_SPLIT_SALT} {check_seed(case_seed, 'case seed')}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    return "train" if u < train else "val" if u < train + val else "test"


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or min(values) < 0 or not math.isclose(sum(values), 1.0, abs_tol=1e-9):
        raise ValueError(f"split_fractions: expected 3 shares >= 0 (train, val, test) summing to 1, got {values}")
    return values
