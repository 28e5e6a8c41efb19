"""Time integration of dose rates (or activities) sampled at a few time points after administration.

For a segment (or a voxel) with values r(t_i) at times t_i (hours after administration, increasing), the
absorbed dose is D = integral of r(t) from 0 to infinity. Models (EANM/MIRD practice: Sjogreen Gleisner et al.,
EJNMMI Physics 2022;9:30; MIRD Pamphlet 23):

- ``mono``: r(t) = a exp(-lambda t), lambda >= the physical decay constant; D = a / lambda.
- ``bi``: uptake and clearance, r(t) = a (exp(-lambda1 t) - exp(-lambda2 t)), lambda2 > lambda1 >= the physical
  decay constant; D = a (1/lambda1 - 1/lambda2). Needs 3 or more time points.
- ``trapezoid``: r rises linearly from 0 at t = 0 to r(t_1), trapezoids between the time points, and after the
  last one physical decay alone: D = r(t_1) t_1 / 2 + sum of trapezoids + r(t_n) / lambda_physical.
- ``single``: one time point and a stated effective half-life T (Hanscheid et al., J Nucl Med 2018;59:75-81):
  a mono-exponential through r(t_1) with lambda = ln 2 / T, D = r(t_1) exp(lambda t_1) / lambda.

:func:`integrate_segment` fits the models a series allows and chooses one: when the series peaks after its first
time point (an uptake phase, which no mono-exponential can follow) the bi-exponential when it converges; otherwise
by the corrected Akaike criterion (AICc, the smallest wins; with too few points for AICc, as 3 points for two
parameters or 4 points for the bi-exponential's three, the mono-exponential when it converges; the trapezoid when
no fit converges). Or it uses the model the user names. Fit uncertainty
(1 standard deviation, from the fit's covariance by the delta method) goes with the integral.
:func:`integrate_voxels` integrates every voxel at once with the mono-exponential fitted to the logarithm of
the values (vectorised), falling back to the trapezoid where that fit is not decreasing at least as fast as
physical decay.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from ..core.constants import LN2, SECONDS_PER_HOUR
from ..physics.nuclides import load_nuclide

MODELS = ("mono", "bi", "trapezoid")
"""Models :func:`integrate_segment` can fit and choose among (``single`` is for one time point)."""
MAX_FIT_EVALUATIONS = 10_000


@dataclass(frozen=True)
class TimeIntegral:
    """The time integral of one series.

    Attributes:
        model: ``mono``, ``bi``, ``trapezoid`` or ``single``.
        integral: the integral (value unit x h; Gy for dose rates in Gy/h).
        uncertainty: its standard deviation from the fit (same unit); NaN when the fit cannot say (as many
            parameters as points, the trapezoid).
        effective_half_life_h: ln 2 / the slowest fitted decay constant (None for the trapezoid).
        parameters: fitted parameters (``a``, ``lambda_per_h``, ...).
        aicc: corrected Akaike criterion of the fit (None when not defined).
        candidates: AICc of every model fitted, when the model was chosen by it.
    """

    model: str
    integral: float
    uncertainty: float
    effective_half_life_h: float | None
    parameters: dict[str, float]
    aicc: float | None = None
    candidates: dict[str, float] = field(default_factory=dict)


def physical_decay_per_h(nuclide: str = "Lu-177") -> float:
    """The physical decay constant (1/h) of ``nuclide`` (ICRP 107 half-life)."""
    return load_nuclide(nuclide).decay_constant_per_s * SECONDS_PER_HOUR


def check_series(times_h: Sequence[float], values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Times (h, > 0, strictly increasing) and values (finite, >= 0) as float64 arrays; ValueError otherwise."""
    times, samples = np.asarray(times_h, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if times.ndim != 1 or times.size == 0 or times.shape[0] != samples.shape[0]:
        raise ValueError(f"times_h: expected one time per value, got {times.shape} times for {samples.shape} values")
    if not np.all(np.isfinite(times)) or np.any(times <= 0):
        raise ValueError(f"times_h: expected hours after administration (> 0), got {times.tolist()}")
    if np.any(np.diff(times) <= 0):
        raise ValueError(f"times_h: time points must be strictly increasing, got {times.tolist()}")
    if not np.all(np.isfinite(samples)) or np.any(samples < 0):
        raise ValueError("values: expected finite values >= 0 at every time point")
    return times, samples


def trapezoid(times_h: Sequence[float], values: Sequence[float], decay_per_h: float) -> TimeIntegral:
    """Linear rise from 0 at t = 0, trapezoids, physical decay after the last point (module docstring)."""
    times, samples = check_series(times_h, values)
    integral = samples[0] * times[0] / 2.0 + float(np.sum(np.diff(times) * (samples[1:] + samples[:-1]) / 2.0))
    integral += samples[-1] / decay_per_h
    return TimeIntegral("trapezoid", float(integral), math.nan, None, {"tail_decay_per_h": decay_per_h})


def single_time_point(time_h: float, value: float, effective_half_life_h: float) -> TimeIntegral:
    """A mono-exponential through one point with a stated effective half-life (Hanscheid et al. 2018)."""
    times, samples = check_series([time_h], [value])
    if not (math.isfinite(effective_half_life_h) and effective_half_life_h > 0):
        raise ValueError(f"effective_half_life_h: expected a half-life in hours > 0, got {effective_half_life_h}")
    decay = LN2 / effective_half_life_h
    integral = float(samples[0] * math.exp(decay * times[0]) / decay)
    return TimeIntegral("single", integral, math.nan, effective_half_life_h, {"lambda_per_h": decay})


def _aicc(residuals: np.ndarray, n_parameters: int) -> float | None:
    n = residuals.size
    if n - n_parameters - 1 <= 0:
        return None
    rss = max(float(np.sum(residuals**2)), 1e-300 * n)
    return n * math.log(rss / n) + 2 * n_parameters + 2 * n_parameters * (n_parameters + 1) / (n - n_parameters - 1)


def _fit(function, times: np.ndarray, samples: np.ndarray, start: list[float], lower: list[float]):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        parameters, covariance = curve_fit(
            function, times, samples, p0=start, bounds=(lower, [np.inf] * len(start)), maxfev=MAX_FIT_EVALUATIONS
        )
    return parameters, covariance


def _spread(gradient: np.ndarray, covariance: np.ndarray) -> float:
    """Delta-method standard deviation; NaN when the fit's covariance is not defined (as many points as
    parameters: curve_fit returns infinities)."""
    with np.errstate(invalid="ignore", over="ignore"):
        variance = float(gradient @ covariance @ gradient)
    return math.sqrt(variance) if math.isfinite(variance) and variance >= 0 else math.nan


def mono_exponential(times_h: Sequence[float], values: Sequence[float], decay_per_h: float) -> TimeIntegral:
    """Least-squares fit of a exp(-lambda t) with lambda >= ``decay_per_h``; needs 2 or more points."""
    times, samples = check_series(times_h, values)
    if times.size < 2 or not np.any(samples > 0):
        raise ValueError("mono: needs 2 or more time points with a value above 0")
    positive = samples > 0
    slope = np.polyfit(times[positive], np.log(samples[positive]), 1)[0] if positive.sum() >= 2 else -decay_per_h
    start_decay = max(-slope, decay_per_h * 1.001)
    start = [float(samples.max() * math.exp(start_decay * times[np.argmax(samples)])), start_decay]
    (a, decay), covariance = _fit(lambda t, a, k: a * np.exp(-k * t), times, samples, start, [0.0, decay_per_h])
    residuals = samples - a * np.exp(-decay * times)
    uncertainty = _spread(np.array([1.0 / decay, -a / decay**2]), covariance)
    return TimeIntegral("mono", float(a / decay), uncertainty, LN2 / decay, {"a": a, "lambda_per_h": decay},
                        _aicc(residuals, 2))  # fmt: skip


def bi_exponential(times_h: Sequence[float], values: Sequence[float], decay_per_h: float) -> TimeIntegral:
    """Least-squares fit of a (exp(-lambda1 t) - exp(-lambda2 t)), lambda2 > lambda1 >= ``decay_per_h``."""
    times, samples = check_series(times_h, values)
    if times.size < 3:
        raise ValueError("bi: needs 3 or more time points")
    mono = mono_exponential(times, samples, decay_per_h)
    slow = mono.parameters["lambda_per_h"]
    start = [mono.parameters["a"] * 1.5, slow, max(10.0 * slow, 3.0 / times[0])]

    def curve(t, a, k1, extra):
        return a * (np.exp(-k1 * t) - np.exp(-(k1 + extra) * t))

    (a, k1, extra), covariance = _fit(curve, times, samples, start, [0.0, decay_per_h, 1e-6])
    k2 = k1 + extra
    integral = a * (1.0 / k1 - 1.0 / k2)
    gradient = np.array([1.0 / k1 - 1.0 / k2, -a / k1**2 + a / k2**2, a / k2**2])
    residuals = samples - curve(times, a, k1, extra)
    parameters = {"a": a, "lambda1_per_h": k1, "lambda2_per_h": k2}
    return TimeIntegral("bi", float(integral), _spread(gradient, covariance), LN2 / k1, parameters,
                        _aicc(residuals, 3))  # fmt: skip


def integrate_segment(
    times_h: Sequence[float],
    values: Sequence[float],
    *,
    model: str | None = None,
    nuclide: str = "Lu-177",
    effective_half_life_h: float | None = None,
) -> TimeIntegral:
    """The time integral of one series: the ``model`` named, or the one chosen as the module docstring says.

    With one time point, ``effective_half_life_h`` is required (single-time-point method). Raises ValueError
    on a bad series, an unknown model, or a named model the series cannot support.
    """
    times, samples = check_series(times_h, values)
    decay = physical_decay_per_h(nuclide)
    if times.size == 1:
        if effective_half_life_h is None:
            raise ValueError(
                "effective_half_life_h: one time point needs a stated effective half-life (single-time-point "
                "method of Hanscheid et al.); give one or more time points"
            )
        return single_time_point(times[0], samples[0], effective_half_life_h)
    fitters = {"mono": mono_exponential, "bi": bi_exponential}
    if model is not None:
        if model not in MODELS:
            raise ValueError(f"model: unknown {model!r}; choose one of {', '.join(MODELS)}")
        return trapezoid(times, samples, decay) if model == "trapezoid" else fitters[model](times, samples, decay)
    fits = []
    for fitter in fitters.values():
        try:
            fits.append(fitter(times, samples, decay))
        except (ValueError, RuntimeError):
            continue
    ranked = [fit for fit in fits if fit.aicc is not None]
    candidates = {fit.model: fit.aicc for fit in ranked}
    rising = [fit for fit in fits if fit.model == "bi"] if int(np.argmax(samples)) > 0 else []
    if rising:  # a mono-exponential cannot rise: with an uptake phase seen, the uptake-clearance model
        best = rising[0]
    elif not ranked:  # too few points for AICc (3 for mono): the simplest fit that converged, else the trapezoid
        return fits[0] if fits and fits[0].model == "mono" else trapezoid(times, samples, decay)
    else:
        best = min(ranked, key=lambda fit: fit.aicc)
    return TimeIntegral(best.model, best.integral, best.uncertainty, best.effective_half_life_h, best.parameters,
                        best.aicc, candidates)  # fmt: skip


def integrate_voxels(
    times_h: Sequence[float], values: np.ndarray, nuclide: str = "Lu-177"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-voxel integrals of ``values`` (time, ...) by a log-linear mono-exponential fit, with the trapezoid
    (module docstring) where the fit is not possible or decays slower than physical decay.

    Returns (integral (...), float32; model map (...), uint8: 1 mono-exponential, 2 trapezoid, 0 no value).
    """
    times = np.asarray(times_h, dtype=np.float64)
    samples = np.asarray(values, dtype=np.float64)
    if samples.shape[0] != times.size or times.size < 2:
        raise ValueError(f"values: expected (time, ...) with {times.size} >= 2 time points, got {samples.shape}")
    check_series(times, np.zeros(times.size))
    if not np.all(np.isfinite(samples)) or np.any(samples < 0):
        raise ValueError("values: expected finite values >= 0 at every time point")
    decay = physical_decay_per_h(nuclide)
    flat = samples.reshape(times.size, -1)
    positive = np.all(flat > 0, axis=0)
    logs = np.log(np.where(positive, flat, 1.0))
    centred = times - times.mean()
    slope = (centred @ (logs - logs.mean(axis=0))) / float(centred @ centred)
    intercept = logs.mean(axis=0) - slope * times.mean()
    fitted = positive & (-slope >= decay)
    rate = np.where(fitted, -slope, 1.0)
    mono = np.exp(intercept) / rate
    first, last = flat[0], flat[-1]
    area = first * times[0] / 2.0 + np.sum(np.diff(times)[:, None] * (flat[1:] + flat[:-1]) / 2.0, axis=0)
    trapezoid_integral = area + last / decay
    integral = np.where(fitted, mono, trapezoid_integral)
    models = np.where(fitted, 1, np.where(np.any(flat > 0, axis=0), 2, 0)).astype(np.uint8)
    shape = samples.shape[1:]
    return integral.reshape(shape).astype(np.float32), models.reshape(shape)
