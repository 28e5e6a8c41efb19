"""Seeds and splits of a DL-PVC dataset: every case's seed, its sub-seeds and its split follow from the dataset seed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from DLPVCLib.dataset.layout import _SPLIT_SALT, SPLIT_FRACTIONS
from DosimetryCore.core.validation import check_seed
from DosimetryCore.imaging import simulation
from DosimetryCore.learning import case_folder


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
    """The split (train, val or test) of a case, a function of its seed alone (see
    :func:`DosimetryCore.learning.case_folder.split_of`), so a case never changes split when a dataset grows,
    when cases are simulated in another order, or on resume."""
    return case_folder.split_of(case_seed, fractions, _SPLIT_SALT)
