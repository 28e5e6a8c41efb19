"""The one validation module: checks for the public entry points (Logic, CLI, library functions).

Each check raises a ValueError that names the input and says what is wrong, and returns the
value in the form the caller computes with. Arrays may be numpy arrays or torch tensors (the
module itself never imports torch). Checks belong at the boundaries; inner loops and
``nn.Module.forward`` in training stay lean.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk

from DosimetryCore.core.constants import BQ_PER_MBQ
from DosimetryCore.core.units import ACTIVITY_UNIT
from DosimetryCore.core.volume import require_image, unit_of, voxel_volume_ml


def _is_finite(values: Any) -> Any:
    """Element-wise finiteness of a numpy array or a torch tensor (tensors have ``isfinite()``)."""
    return values.isfinite() if hasattr(values, "isfinite") else np.isfinite(values)


def check_finite(values: Any, name: str) -> None:
    """Raise when ``values`` (array or tensor) holds NaN or infinite values."""
    if not bool(_is_finite(values).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")


def check_finite_nonnegative(values: Any, name: str, quantity: str = "values", unit: str = "") -> None:
    """Raise when ``values`` (array or tensor) holds NaN, infinite or negative values.

    The message names ``name`` and, for negative values, the ``quantity`` and the minimum in ``unit``.
    """
    check_finite(values, name)
    if bool((values < 0).any()):
        suffix = f" {unit}" if unit else ""
        raise ValueError(f"{name}: contains negative {quantity} (minimum {float(values.min()):g}{suffix})")


def check_activity_image(image: sitk.Image, name: str, negative_tolerance: float = 0.0) -> np.ndarray:
    """Check ``image`` is a 3D activity map in Bq/mL; return its values as float64, shape ``(z, y, x)``.

    Raises a ValueError naming ``name`` for: not a 3D scalar image, fewer than 2 voxels along an
    axis (a slice, not a volume), a unit other than Bq/mL, NaN or infinite values, negative
    values (below ``-negative_tolerance`` times the maximum: filtering and interpolation leave small
    negatives that some methods accept), or zero everywhere.
    """
    require_image(image, name, dimension=3)
    if min(image.GetSize()) < 2:
        raise ValueError(f"{name}: is 2D (size {image.GetSize()}); a 3D SPECT volume is needed")
    unit = unit_of(image)
    if unit not in (None, ACTIVITY_UNIT):
        raise ValueError(f"{name}: unit is {unit}, expected {ACTIVITY_UNIT}")
    values = sitk.GetArrayFromImage(image).astype(np.float64)
    if negative_tolerance > 0:
        check_finite(values, name)
        if values.min() < -negative_tolerance * max(values.max(), 0.0):
            raise ValueError(
                f"{name}: contains negative activity ({values.min():g} {ACTIVITY_UNIT}, below "
                f"-{100 * negative_tolerance:g} % of the maximum that filtering or interpolation can leave)"
            )
    else:
        check_finite_nonnegative(values, name, "activity", ACTIVITY_UNIT)
    if not values.any():
        raise ValueError(f"{name}: is zero everywhere")
    return values


def check_seed(seed: object, name: str = "seed") -> int:
    """A random seed: an integer >= 0 (not a bool)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"{name}: expected an integer >= 0, got {seed!r}")
    return int(seed)


def three_values(value: object, name: str) -> tuple[float, float, float]:
    """One number or three as three finite floats."""
    try:
        a, b, c = (float(v) for v in np.broadcast_to(np.asarray(value, dtype=float), (3,)))
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected one number or three, got {value!r}") from None
    if not np.all(np.isfinite((a, b, c))):
        raise ValueError(f"{name}: expected finite values, got {value!r}")
    return a, b, c


def check_spacing(spacing_mm: object, name: str = "spacing_mm") -> tuple[float, float, float]:
    """A voxel spacing: one or three positive lengths in mm, returned as three, in the order given."""
    values = three_values(spacing_mm, name)
    if min(values) <= 0:
        raise ValueError(f"{name}: expected positive values in mm, got {spacing_mm!r}")
    return values


def check_positive(value: object, name: str, allow_zero: bool = False) -> float:
    """A finite number > 0 (>= 0 with ``allow_zero``)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise ValueError(f"{name}: expected a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")
    return number


def check_range(value: object, name: str, upper: float = np.inf) -> tuple[float, float]:
    """A ``(low, high)`` pair with ``0 < low <= high <= upper``."""
    try:
        low, high = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        low, high = float("nan"), float("nan")
    if not (0 < low <= high <= upper):
        raise ValueError(f"{name}: expected (low, high) with 0 < low <= high <= {upper}, got {value!r}")
    return low, high


PLAUSIBLE_TOTAL_ACTIVITY_MBQ = (1.0, 50_000.0)
"""Total activity (MBq) in a field of view that a 177Lu patient image plausibly holds: therapies give 3.7 to
7.4 GBq and imaging at days still shows tens of MBq; outside this range a unit mistake is likely."""


def activity_notes(image: sitk.Image, name: str) -> list[str]:
    """Warnings on an activity image that is accepted but doubtful, for the output's provenance and the console:
    no unit tag (the values are taken as Bq/mL), or a total activity outside :data:`PLAUSIBLE_TOTAL_ACTIVITY_MBQ`
    (for example MBq/mL read as Bq/mL gives a millionth of the real total)."""
    notes = []
    if unit_of(image) is None:
        notes.append(f"{name}: the image states no unit; its values were taken as {ACTIVITY_UNIT}")
    values = sitk.GetArrayViewFromImage(image)
    total_MBq = float(np.sum(values, dtype=np.float64)) * voxel_volume_ml(image) / BQ_PER_MBQ
    low, high = PLAUSIBLE_TOTAL_ACTIVITY_MBQ
    if total_MBq < low:
        notes.append(
            f"{name}: total activity {total_MBq:.3g} MBq in the field of view is below {low:g} MBq; is the image in "
            f"{ACTIVITY_UNIT} (not MBq/mL, kBq/mL or counts)?"
        )
    elif total_MBq > high:
        notes.append(
            f"{name}: total activity {total_MBq:.3g} MBq in the field of view is above {high / 1000:g} GBq; is the "
            f"image in {ACTIVITY_UNIT} (not mBq/mL or counts)?"
        )
    return notes
