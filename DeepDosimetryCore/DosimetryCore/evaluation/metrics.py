"""Image-quality and dosimetry metrics: the one implementation every module and report uses.

Conventions
-----------
- Images are numpy arrays of shape ``(z, y, x)``; torch tensors are accepted and converted with
  ``detach().cpu()``. Voxelwise metrics accept any shape as long as all arrays agree; SSIM needs a
  3D ``(z, y, x)`` (or 2D ``(y, x)``) image. Values are used in float64.
- ``estimate`` is the image under test, ``truth`` the reference (ground truth). Both must be
  finite; a NaN or infinite voxel raises :class:`ValueError`. Negative values are allowed (a
  network may produce them and the metric should show it).
- ``mask`` selects the voxels a metric is computed over: an array of the same shape whose
  nonzero (``True``) voxels are inside. ``None`` means every voxel (VAA: every voxel where the
  truth is nonzero). A mask that selects nothing raises :class:`ValueError`.
- Units: NRMSE, VAA, RC and SSIM are returned as plain ratios/fractions (``0.078`` means 7.8 %);
  functions whose name ends in ``_percent`` (AD, MDE) return percent. MAE, segment statistics and
  ``D_x`` are in the unit of the input values (e.g. Bq/mL or Gy/h).

Sources
-------
- Seed 002, Li et al. (DoseRateCNN): NRMSE (eq. 2) and mean dose error (MDE) per organ/lesion.
- Seed 003, Leube et al., J Nucl Med 2024 (DL-PVC): SSIM, NRMSE, voxel activity accuracy (VAA,
  alpha = 5 %), total activity deviation (AD, %), recovery coefficient (RC). Their voxel metrics
  are restricted to the region where ground-truth activity is present: pass ``mask=truth > 0``
  (VAA does this by default).
- Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error visibility to
  structural similarity", IEEE Trans Image Process 13:600-612 (2004): SSIM.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy import ndimage

SSIM_K1 = 0.01
"""SSIM luminance constant K1 (Wang et al. 2004)."""

SSIM_K2 = 0.03
"""SSIM contrast/structure constant K2 (Wang et al. 2004)."""

SSIM_SIGMA = 1.5
"""Standard deviation of the SSIM Gaussian window in voxels (Wang et al. 2004)."""

SSIM_TRUNCATE = 3.5
"""Gaussian truncation in sigmas: radius int(3.5 * 1.5 + 0.5) = 5, the 11-voxel window of Wang et al."""

VAA_ALPHA = 0.05
"""Relative tolerance of the voxel activity accuracy (seed 003: alpha fixed at 5 %)."""

NrmseNormalization = Literal["rms", "range", "mean"]


# --------------------------------------------------------------------------------------------
# input validation


def _as_values(value: Any, name: str) -> np.ndarray:
    """``value`` (numpy array or torch tensor) as a finite, non-empty float64 array; else ValueError naming it."""
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{name}: expected real numeric values, got dtype {array.dtype}")
    if array.size == 0:
        raise ValueError(f"{name}: empty array (shape {array.shape})")
    array = array.astype(np.float64, copy=False)
    bad = np.count_nonzero(~np.isfinite(array))
    if bad:
        raise ValueError(f"{name}: {bad} voxel(s) are NaN or infinite")
    return array


def _pair(estimate: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``estimate`` and ``truth`` arrays of the same shape."""
    est = _as_values(estimate, "estimate")
    ref = _as_values(truth, "truth")
    if est.shape != ref.shape:
        raise ValueError(f"estimate: shape {est.shape} does not match truth shape {ref.shape}")
    return est, ref


def _as_mask(mask: Any, shape: tuple[int, ...], name: str = "mask") -> np.ndarray:
    """Boolean mask of ``shape`` (nonzero = inside); ``None`` selects every voxel. Empty -> ValueError."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    array = np.asarray(mask)
    if array.shape != shape:
        raise ValueError(f"{name}: shape {array.shape} does not match image shape {shape}")
    if array.dtype != bool:
        if not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"{name}: expected a boolean or numeric array, got dtype {array.dtype}")
        if np.isnan(array).any():
            raise ValueError(f"{name}: contains NaN")
        array = array != 0
    if not array.any():
        raise ValueError(f"{name}: selects no voxels")
    return array


def _positive(value: float, name: str) -> float:
    """``value`` as a finite float > 0; else ValueError naming it."""
    number = float(value)
    if not np.isfinite(number) or number <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return number


# --------------------------------------------------------------------------------------------
# image-quality metrics


def ssim_map(estimate: Any, truth: Any, *, data_range: float, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Local structural similarity of ``estimate`` to ``truth`` (Wang et al. 2004, eq. 13).

    Local means, variances and the covariance are Gaussian-weighted (standard deviation ``sigma``
    voxels along every axis, truncated at 3.5 sigma: an 11-voxel window for sigma = 1.5), with
    population (not sample) moments as in Wang et al.; C1 = (K1 L)^2 and C2 = (K2 L)^2 with
    K1 = 0.01, K2 = 0.03 and L = ``data_range``. Borders are handled by mirror reflection
    (``scipy.ndimage`` mode ``"reflect"``); nothing is cropped.

    Args:
        estimate, truth: images of the same shape, 3D ``(z, y, x)`` or 2D ``(y, x)``.
        data_range: L, the dynamic range of the values, in their unit (required: there is no
            silent default; a common choice is ``truth.max() - truth.min()``).
        sigma: Gaussian window standard deviation in voxels (isotropic in voxel units).

    Returns:
        SSIM map (dimensionless, at most 1), float64, same shape as the inputs.
    """
    est, ref = _pair(estimate, truth)
    if est.ndim not in (2, 3):
        raise ValueError(f"estimate: SSIM needs a 3D (z, y, x) or 2D (y, x) image, got shape {est.shape}")
    scale = _positive(data_range, "data_range")
    sigma = _positive(sigma, "sigma")
    # Work on values divided by L: SSIM is unchanged, C1 = K1^2, C2 = K2^2, and magnitudes stay ~1.
    est = est / scale
    ref = ref / scale

    def local_mean(image: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(image, sigma, mode="reflect", truncate=SSIM_TRUNCATE)

    mu_e = local_mean(est)
    mu_t = local_mean(ref)
    mu_et = mu_e * mu_t
    mu_ee = mu_e * mu_e
    mu_tt = mu_t * mu_t
    var_e = local_mean(est * est) - mu_ee
    var_t = local_mean(ref * ref) - mu_tt
    cov = local_mean(est * ref) - mu_et
    c1 = SSIM_K1**2
    c2 = SSIM_K2**2
    numerator = (2.0 * mu_et + c1) * (2.0 * cov + c2)
    denominator = (mu_ee + mu_tt + c1) * (var_e + var_t + c2)
    return numerator / denominator


def ssim(estimate: Any, truth: Any, *, data_range: float, mask: Any = None, sigma: float = SSIM_SIGMA) -> float:
    """Mean structural similarity index (SSIM, Wang et al. 2004), 3D Gaussian window.

    The SSIM map of :func:`ssim_map` averaged over ``mask`` (every voxel when ``None``). The
    window still sees voxels outside the mask; only the averaging is restricted. Seed 003
    (Leube et al.) reports SSIM inside the region where ground-truth activity is present:
    ``mask=truth > 0``.

    Args:
        estimate, truth: images of the same shape, ``(z, y, x)`` (or 2D ``(y, x)``).
        data_range: L in C1 = (K1 L)^2, C2 = (K2 L)^2, in the unit of the values; required.
        mask: region over which the map is averaged, same shape; nonzero = inside.
        sigma: Gaussian window standard deviation in voxels (default 1.5, Wang et al.).

    Returns:
        Mean SSIM, dimensionless, at most 1 (1 only for identical images).
    """
    similarity = ssim_map(estimate, truth, data_range=data_range, sigma=sigma)
    inside = _as_mask(mask, similarity.shape)
    return float(similarity[inside].mean())


def nrmse(estimate: Any, truth: Any, mask: Any = None, *, normalization: NrmseNormalization = "rms") -> float:
    """Normalised root-mean-square error of ``estimate`` against ``truth`` over ``mask``.

    RMSE = sqrt(mean_j (estimate_j - truth_j)^2) over the n voxels j in the mask, divided by:

    - ``"rms"`` (default): sqrt(mean_j truth_j^2), the root mean square of the truth. This is
      seed 002 (Li et al., DoseRateCNN) eq. 2, evaluated per region in their Table II; it equals
      ||estimate - truth||_2 / ||truth||_2.
    - ``"range"``: max(truth) - min(truth) in the mask.
    - ``"mean"``: mean(truth) in the mask.

    Seed 003 (Leube et al.) computes NRMSE inside the ground-truth activity region but its main
    text leaves the normaliser to the supplement; pick ``normalization`` to match the study being
    reproduced (``"rms"`` keeps seed 002's definition).

    Args:
        estimate, truth: arrays of the same shape, e.g. ``(z, y, x)``.
        mask: voxels to compare, same shape; nonzero = inside; ``None`` = all voxels.
        normalization: ``"rms"``, ``"range"`` or ``"mean"`` (see above).

    Returns:
        NRMSE as a ratio (multiply by 100 for percent).
    """
    if normalization not in ("rms", "range", "mean"):
        raise ValueError(f"normalization: expected 'rms', 'range' or 'mean', got {normalization!r}")
    est, ref = _pair(estimate, truth)
    inside = _as_mask(mask, ref.shape)
    est, ref = est[inside], ref[inside]
    rmse = np.sqrt(np.mean((est - ref) ** 2))
    if normalization == "rms":
        denominator = np.sqrt(np.mean(ref**2))
    elif normalization == "range":
        denominator = ref.max() - ref.min()
    else:
        denominator = ref.mean()
    if denominator == 0:
        raise ValueError(f"truth: {normalization} normaliser is 0 inside the mask; NRMSE is undefined")
    return float(rmse / denominator)


def mae(estimate: Any, truth: Any, mask: Any = None) -> float:
    """Mean absolute error, mean_j |estimate_j - truth_j| over the voxels of ``mask``.

    Args:
        estimate, truth: arrays of the same shape, e.g. ``(z, y, x)``.
        mask: voxels to compare, same shape; nonzero = inside; ``None`` = all voxels.

    Returns:
        MAE in the unit of the inputs (e.g. Bq/mL or Gy/h).
    """
    est, ref = _pair(estimate, truth)
    inside = _as_mask(mask, ref.shape)
    return float(np.mean(np.abs(est[inside] - ref[inside])))


def vaa(estimate: Any, truth: Any, mask: Any = None, *, alpha: float = VAA_ALPHA) -> float:
    """Voxel activity accuracy: fraction of voxels whose relative deviation is below ``alpha``.

    VAA = #{j in mask : |estimate_j - truth_j| < alpha * |truth_j|} / #{j in mask}, as defined in
    seed 003 (Leube et al.; alpha fixed at 5 %, strict "less than"). The default mask is where the
    truth is nonzero, seed 003's "region in which ground-truth activity was present".

    Args:
        estimate, truth: arrays of the same shape, e.g. ``(z, y, x)``.
        mask: voxels to evaluate, same shape; nonzero = inside. Must not contain voxels where the
            truth is 0 (relative deviation undefined). ``None``: ``truth != 0``.
        alpha: relative tolerance as a fraction (0.05 = 5 %).

    Returns:
        VAA as a fraction in [0, 1] (multiply by 100 for percent).
    """
    est, ref = _pair(estimate, truth)
    alpha = _positive(alpha, "alpha")
    if mask is None:
        inside = _as_mask(ref != 0, ref.shape, name="truth != 0 (default VAA mask)")
    else:
        inside = _as_mask(mask, ref.shape)
        zeros = np.count_nonzero(ref[inside] == 0)
        if zeros:
            raise ValueError(f"mask: includes {zeros} voxel(s) where truth is 0; relative deviation is undefined there")
    est, ref = est[inside], ref[inside]
    return float(np.mean(np.abs(est - ref) < alpha * np.abs(ref)))


def activity_deviation_percent(estimate: Any, truth: Any, mask: Any = None) -> float:
    """Total activity deviation AD = 100 * (sum(estimate) - sum(truth)) / sum(truth), in percent.

    Signed (positive: the estimate holds more activity than the truth). Seed 003 (Leube et al.)
    reports AD in percent over the whole image: its Table 1 gives the same AD without PVC and
    after activity-conserving DL-PVC, which holds for full-field sums, so the default ``mask``
    is every voxel. Sums of concentrations compare total activities when the voxel volume is the
    same in both images.

    Args:
        estimate, truth: arrays of the same shape, e.g. ``(z, y, x)`` in Bq/mL.
        mask: voxels to sum, same shape; nonzero = inside; ``None`` = all voxels.

    Returns:
        AD in percent.
    """
    est, ref = _pair(estimate, truth)
    inside = _as_mask(mask, ref.shape)
    total_truth = ref[inside].sum()
    if total_truth == 0:
        raise ValueError("truth: sums to 0 inside the mask; activity deviation is undefined")
    return float(100.0 * (est[inside].sum() - total_truth) / total_truth)


def recovery_coefficient(estimate: Any, truth: Any, mask: Any) -> float:
    """Recovery coefficient RC = mean(estimate in region) / mean(truth in region).

    As used for the cubes and phantom compartments of seed 003 (Leube et al.): 1 is full
    recovery, below 1 the partial-volume loss.

    Args:
        estimate, truth: arrays of the same shape, e.g. ``(z, y, x)``.
        mask: the region, same shape; nonzero = inside (required).

    Returns:
        RC as a ratio (dimensionless).
    """
    est, ref = _pair(estimate, truth)
    inside = _as_mask(mask, ref.shape)
    mean_truth = ref[inside].mean()
    if mean_truth == 0:
        raise ValueError("truth: mean is 0 inside the mask; recovery coefficient is undefined")
    return float(est[inside].mean() / mean_truth)


def _relative_error_percent(mean_estimate: np.ndarray, mean_truth: np.ndarray, absolute: bool) -> np.ndarray:
    """100 * (mean_estimate - mean_truth) / |mean_truth|, absolute value when ``absolute``."""
    error = 100.0 * (mean_estimate - mean_truth) / np.abs(mean_truth)
    return np.abs(error) if absolute else error


def mean_dose_error_percent(estimate: Any, truth: Any, mask: Any = None, *, absolute: bool = True) -> float:
    """Mean dose error MDE = 100 * |mean(estimate) - mean(truth)| / |mean(truth)| over ``mask``, in percent.

    Seed 002 (Li et al., DoseRateCNN) defines MDE per organ/lesion as the absolute error of the
    mean dose rate relative to the ground truth (their Table I). With ``absolute=False`` the sign
    is kept (positive: the estimate is too high).

    Args:
        estimate, truth: arrays of the same shape, e.g. ``(z, y, x)`` in Gy/h or Gy.
        mask: the region, same shape; nonzero = inside; ``None`` = all voxels.
        absolute: return |error| (seed 002) rather than the signed error.

    Returns:
        MDE in percent.
    """
    est, ref = _pair(estimate, truth)
    inside = _as_mask(mask, ref.shape)
    mean_truth = ref[inside].mean()
    if mean_truth == 0:
        raise ValueError("truth: mean is 0 inside the mask; mean dose error is undefined")
    return float(_relative_error_percent(est[inside].mean(), mean_truth, absolute))
