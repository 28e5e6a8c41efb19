"""Planar data consistency of the diffusion sampler (DDS, Chung et al.): a denoised volume estimate made
consistent with the measured anterior/posterior counts.

The estimate ``x0`` (activity share, network units, (z, y, x)) is brought towards

    min_x  1/2 || A x - y / k ||^2_W  +  lambda || D_z x ||_1   subject to  x >= 0

by a few ADMM iterations (splits ``z = D_z x`` and ``v = x``, scaled duals ``u`` and ``s``) initialised at
``max(x0, 0)``, each x-update a few conjugate-gradient steps (preconditioned by the diagonal bound below) on

    (A^T W A + rho D_z^T P D_z + rho C) x = A^T W y / k + rho D_z^T P (z - u) + rho C (v - s),
    z = soft(D_z x + u, lambda / (rho P)),   v = max(x + s, 0),

started at the current x (few steps keep the result near ``x0``: the prior decides what the data do not), and
stopped early by the discrepancy principle: once the Poisson chi-square of the pixels with counts, sum (k A x -
y)^2 / y, is down to ``discrepancy`` x their number (its expected value under Poisson noise), so the counts' noise
is not fitted (pixels without counts are left out: what is left there is activity the non-negativity has not yet
removed, not noise). Here

- ``A`` is the core's :class:`~DosimetryCore.imaging.projection.PlanarProjector` with the patient's attenuation
  and collimator response, ``y`` the measured counts (2, z, x);
- ``W`` = diag(1 / max(y, 1)) (Poisson weights), divided by the median row sum of ``A^T W A`` over the voxels
  whose antero-posterior line has counts in both views, so that ``rho`` and ``lambda`` do not depend on the count
  level;
- ``C`` is each voxel's data curvature (the row sums of ``A^T W A``, a bound on its diagonal) and ``P`` weighs
  each z difference by the curvature of its two voxels: the ADMM penalties in the norm of the data. With Poisson
  weights a hot line's curvature is small (1 / counts) and a penalty ``rho`` equal everywhere would let the prior
  outweigh the data there; in the data's norm the total-variation threshold grows with the activity, as the
  objective's two terms do;
- ``k`` ties the absolute scale to the counts as :func:`PlanarTo3DLib.reconstruct.scaled_to_counts` does: the
  measured total over the projected total of ``max(x0, 0)``, so the result keeps ``x0``'s scale and follows the
  data in shape;
- ``D_z`` the forward differences along z, (z - 1, y, x): not circular, so the first and last slices never meet;
- the non-negativity split is what fixes the activity at zero on lines without counts (their two views allow any
  mix of signs along the line); with a ``support`` (the patient's body from the CT) it also sets the activity
  outside the body to zero: activity lies in the patient, and the planar images cannot tell the body from the air
  on the same line. The result is ``v``, non-negative and zero outside the support.

Everything is whole-volume tensor algebra (no loops over voxels); float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from DosimetryCore.imaging.projection import PlanarProjector


@dataclass(frozen=True)
class ConsistencySettings:
    """ADMM iterations, CG steps per x-update, the ADMM penalty ``rho`` (relative to the data curvature), the TV
    weight ``tv_weight`` (lambda; the threshold on a z step is lambda / (rho x its data curvature), in activity-share
    units where the curvature is the median one) and the ``discrepancy`` (chi-square per pixel) at which the CG
    steps stop (0: never)."""

    admm_iterations: int = 6
    cg_steps: int = 2
    rho: float = 1.0
    tv_weight: float = 0.001
    discrepancy: float = 1.0

    def __post_init__(self) -> None:
        if (self.admm_iterations < 1 or self.cg_steps < 1 or not self.rho > 0 or self.tv_weight < 0
                or self.discrepancy < 0):  # fmt: skip
            raise ValueError(f"consistency settings: iterations and CG steps >= 1, rho > 0, weight >= 0; got {self}")


def z_differences(volume: torch.Tensor) -> torch.Tensor:
    """Forward differences along z: (z, y, x) -> (z - 1, y, x); no wrap-around."""
    return volume[1:] - volume[:-1]


def z_differences_adjoint(differences: torch.Tensor) -> torch.Tensor:
    """The adjoint (transpose) of :func:`z_differences`: (z - 1, y, x) -> (z, y, x)."""
    zero = torch.zeros_like(differences[:1])
    return torch.cat([zero, differences]) - torch.cat([differences, zero])


def soft_threshold(values: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
    """The proximal map of ``threshold * |.|_1`` (elementwise thresholds when a tensor)."""
    return torch.sign(values) * torch.clamp(values.abs() - threshold, min=0.0)


class PlanarConsistency:
    """The data-consistency step of one patient: ``consistency(x0) -> x`` (activity share, (z, y, x)).

    Args:
        projector: the planar projector of the patient's grid (attenuation, collimator response).
        measured: measured anterior/posterior counts (2, z, x), finite and >= 0, some positive.
        settings: :class:`ConsistencySettings`.
        support: boolean (z, y, x) mask of where activity may be (the body); None: everywhere.
    """

    def __init__(
        self,
        projector: PlanarProjector,
        measured: np.ndarray | torch.Tensor,
        settings: ConsistencySettings,
        support: np.ndarray | None = None,
    ) -> None:
        counts = projector.as_projections(measured, "measured")
        if support is not None and tuple(np.shape(support)) != tuple(projector.shape):
            raise ValueError(f"support: expected a mask of the grid's shape {tuple(projector.shape)}, got "
                             f"{tuple(np.shape(support))}")  # fmt: skip
        self.support = None if support is None else torch.from_numpy(np.asarray(support, bool))
        if not bool(torch.isfinite(counts).all()) or bool((counts < 0).any()) or not float(counts.sum()) > 0:
            raise ValueError("measured: planar counts must be finite, >= 0 and hold some counts")
        self.projector, self.counts, self.settings = projector, counts, settings
        weights = 1.0 / torch.clamp(counts, min=1.0)
        row_sums = projector.back(weights * projector.forward(torch.ones(projector.shape, dtype=counts.dtype)))
        seen = (counts.min(dim=0).values >= 1.0)[:, None, :].expand_as(row_sums)
        if not bool(seen.any()):
            raise ValueError("measured: no pixel holds counts in both views")
        scale = row_sums[seen].median()
        self.weights = weights / scale
        self._poisson_weights = torch.where(counts >= 1.0, weights, torch.zeros_like(weights))
        self._counted_pixels = int((counts >= 1.0).sum())
        curvature = torch.clamp(row_sums / scale, min=1e-6)
        self._curvature = curvature
        self._difference_weights = 0.5 * (curvature[1:] + curvature[:-1])
        edges = torch.zeros_like(curvature)
        edges[1:] += self._difference_weights
        edges[:-1] += self._difference_weights
        self._preconditioner = curvature + settings.rho * (edges + curvature)
        uniform = torch.ones(projector.shape, dtype=counts.dtype)
        self._uniform_projected = float(projector.forward(uniform).sum()) / uniform.numel()

    def scale(self, share: torch.Tensor) -> float:
        """``k``: measured total counts over the projected total of ``max(share, 0)`` (a uniform share of the same
        total when that projects to nothing)."""
        positive = torch.clamp(share, min=0.0)
        projected = float(self.projector.forward(positive).sum())
        floor = 1e-6 * self._uniform_projected * max(float(share.abs().sum()), 1e-12)
        return float(self.counts.sum()) / max(projected, floor)

    def _normal(self, volume: torch.Tensor) -> torch.Tensor:
        """(A^T W A + rho D^T P D + rho C) volume."""
        data = self.projector.back(self.weights * self.projector.forward(volume))
        penalties = z_differences_adjoint(self._difference_weights * z_differences(volume)) + self._curvature * volume
        return data + self.settings.rho * penalties

    def chi_square_per_pixel(self, share: torch.Tensor, k: float) -> float:
        """sum (k A share - y)^2 / y over the pixels with counts, per pixel (about 1 where only Poisson noise is
        left)."""
        residual = self.projector.forward(share) * k - self.counts
        return float((self._poisson_weights * residual * residual).sum()) / self._counted_pixels

    def _conjugate_gradient(self, start: torch.Tensor, right: torch.Tensor, k: float) -> torch.Tensor:
        """A few conjugate-gradient steps on the normal equations from ``start``, preconditioned by a bound on their
        diagonal (the weights span orders of magnitude between empty and hot lines). A step that would bring the
        chi-square below the discrepancy is shortened to land on it (the chi-square is quadratic along the step),
        and the iteration ends there."""
        target = self.settings.discrepancy * self._counted_pixels
        x = start.clone()
        data_residual = self.projector.forward(x) * k - self.counts
        residual = right - self._normal(x)
        preconditioned = residual / self._preconditioner
        direction = preconditioned.clone()
        product_norm = float((residual * preconditioned).sum())
        for _ in range(self.settings.cg_steps):
            chi_square = float((self._poisson_weights * data_residual * data_residual).sum())
            if product_norm <= 0.0 or chi_square <= target and target > 0:
                break
            product = self._normal(direction)
            step = product_norm / max(float((direction * product).sum()), 1e-30)
            change = self.projector.forward(direction) * k
            a = float((self._poisson_weights * change * change).sum())
            b = 2.0 * float((self._poisson_weights * data_residual * change).sum())
            if target > 0 and a > 0 and chi_square + b * step + a * step * step < target:
                step = min(step, (-b - math.sqrt(max(b * b - 4.0 * a * (chi_square - target), 0.0))) / (2.0 * a))
                return x + step * direction
            x += step * direction
            data_residual += step * change
            residual -= step * product
            preconditioned = residual / self._preconditioner
            new_norm = float((residual * preconditioned).sum())
            direction = preconditioned + (new_norm / product_norm) * direction
            product_norm = new_norm
        return x

    def __call__(self, share: torch.Tensor) -> torch.Tensor:
        """``share`` (z, y, x) made consistent with the counts (see the module docstring); non-negative and zero
        outside the support."""
        x = self._feasible(self.projector.as_volume(share, "share"))
        rho, penalty = self.settings.rho, self._difference_weights
        threshold = self.settings.tv_weight / (rho * penalty)
        k = self.scale(x)
        data_term = self.projector.back(self.weights * self.counts / k)
        split, positive = soft_threshold(z_differences(x), threshold), x
        dual, positive_dual = torch.zeros_like(split), torch.zeros_like(x)
        for _ in range(self.settings.admm_iterations):
            right = data_term + rho * (z_differences_adjoint(penalty * (split - dual)) +
                                       self._curvature * (positive - positive_dual))  # fmt: skip
            x = self._conjugate_gradient(x, right, k)
            differences = z_differences(x)
            split = soft_threshold(differences + dual, threshold)
            dual = dual + differences - split
            positive = self._feasible(x + positive_dual)
            positive_dual = positive_dual + x - positive
        return positive

    def _feasible(self, volume: torch.Tensor) -> torch.Tensor:
        """The projection onto the feasible set: non-negative, zero outside the support."""
        positive = torch.clamp(volume, min=0.0)
        return positive if self.support is None else torch.where(self.support, positive, torch.zeros_like(positive))
