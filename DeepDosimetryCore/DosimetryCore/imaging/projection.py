"""SPECT and planar (anterior/posterior) projectors for parallel-hole gamma cameras.

One projector family, torch-native, float32 by default (float64 for adjoint tests), on CPU or CUDA.

The model (seed 000, eq. 2, with a depth-dependent point-spread function; the usual rotation-based
SPECT projector): for each view the object and the attenuation map are rotated into the detector
frame, every voxel is weighted by ``exp(-line integral of mu from the voxel to the detector)``, every
depth plane is blurred by the Gaussian collimator-detector response of its distance to the detector
face, and the planes are summed along the viewing direction. The back projector is the exact adjoint
(matrix transpose) of that forward model.

Geometry and conventions
------------------------
- Volumes are tensors of shape ``(z, y, x)`` on the voxel grid of a SimpleITK image in LPS (see
  :mod:`DosimetryCore.core.volume`): x toward the patient's left, y toward posterior (the anterior side is
  at low y), z superior. ``spacing_mm`` is ``(sz, sy, sx)`` in mm, in the same order as the axes
  (the reverse of SimpleITK's ``GetSpacing()``). The grid is taken as axis aligned (identity direction).
- The rotation axis is parallel to z through the centre of the in-plane grid (the isocentre,
  index ``((x_size - 1) / 2, (y_size - 1) / 2)``).
- View angle ``theta`` (degrees): the camera sits on the side of the unit vector
  ``n(theta) = (-sin theta, -cos theta)`` in (x, y) from the isocentre. ``theta = 0`` is the anterior
  camera (on the low-y side), ``90`` the camera on the patient's right (-x), ``180`` posterior,
  ``270`` the patient's left. Increasing angle turns the camera counter-clockwise as seen from the
  feet (the radiological axial view: anterior up, patient left on the viewer's right).
- The detector's lateral axis is ``u(theta) = (cos theta, -sin theta)``: ``+x`` (patient left) at
  ``theta = 0``, so the anterior view is the image seen from the camera.
- SPECT projections have shape ``(views, z, u)``: row ``i`` is the volume's z index ``i`` (detector rows
  have the z spacing), column ``j`` is the lateral position ``(j - (x_size - 1) / 2) * sx`` mm along
  ``u(theta)`` (``x_size`` bins of width ``sx``).
- Depth: in the detector frame the object is sampled on ``y_size`` planes spaced ``sy`` at signed
  positions ``t`` (mm along ``n(theta)``, toward the camera) centred on the isocentre. The distance
  of a plane to the detector face is ``d = radius_mm - t`` (clamped at 0).
- Rotation into the detector frame: each voxel's value is distributed over the four detector-frame
  samples around its rotated centre with bilinear weights (summing to one, so activity is conserved
  voxel by voxel); the mu map is interpolated bilinearly at the detector-frame samples. At
  ``theta = 0`` and ``180`` both coincide with the voxel grid (no interpolation). The object must lie
  inside the cylinder inscribed in the in-plane grid; what rotates outside it is lost.
- Attenuation: ``mu`` is given in 1/cm (``mu_per_cm``). The line integral from a voxel to the detector
  is the sum of ``mu * step`` over the planes in front of it plus half of its own plane.
- Values: the projector is linear and unit-free: a voxel of value ``a`` contributes ``a`` times its
  attenuation factor to the detector, spread by the collimator response (which has unit sum).
  :func:`counts_per_Bq_per_mL` gives the factor turning Bq/mL into expected counts.

Implementation: the rotations are sparse matrices (bilinear weights) applied to the volume laid out as
``(y * x, z)``, so one sparse product rotates every z slice; the attenuation weights and the rotations
are computed once per view and cached. The blur of depth plane ``d`` is ``K_d P_d A_d`` with ``K_d``
and ``A_d`` the (Toeplitz) lateral and axial Gaussian matrices of its distance, and the sum over depth
is folded into one matrix product ``[K_0 ... K_n] [P_0 A_0; ...; P_n A_n]``. This is exact linear
convolution truncated at the detector edges (no wrap-around, no padding) and its transpose, the back
projector, costs the same.
The collimator-detector response is :mod:`DosimetryCore.imaging.collimators`'s.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from DosimetryCore.core.device import resolve_device
from DosimetryCore.core.validation import check_finite_nonnegative, check_spacing
from DosimetryCore.imaging.collimators import DetectorResponse


def counts_per_Bq_per_mL(spacing_mm: Sequence[float], sensitivity_cps_per_MBq: float, time_s: float) -> float:
    """Expected counts per projector unit when voxel values are activity concentrations in Bq/mL.

    ``voxel volume [mL] * 1e-6 [MBq/Bq] * sensitivity [counts/s per MBq] * time [s]``.
    """
    spacing = check_spacing(spacing_mm)
    if not sensitivity_cps_per_MBq > 0:
        raise ValueError(f"sensitivity_cps_per_MBq: expected a positive value, got {sensitivity_cps_per_MBq}")
    if not time_s > 0:
        raise ValueError(f"time_s: expected a positive acquisition time in s, got {time_s}")
    return float(np.prod(spacing)) / 1000.0 * 1e-6 * sensitivity_cps_per_MBq * time_s


def poisson_counts(expected: torch.Tensor, seed: int | None = None) -> torch.Tensor:
    """Poisson samples of the non-negative ``expected`` counts (same shape, dtype and device).

    ``seed`` makes the draw reproducible; ``None`` uses torch's global generator.
    """
    generator = None
    if seed is not None:
        generator = torch.Generator(device=expected.device)
        generator.manual_seed(int(seed))
    return torch.poisson(expected, generator=generator)


def _as_tensor(
    values: torch.Tensor | np.ndarray, name: str, ndim: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """``values`` as a tensor on ``device`` with ``dtype``; a ValueError naming it unless it has ``ndim`` dims."""
    if not isinstance(values, torch.Tensor | np.ndarray):
        raise ValueError(f"{name}: expected a torch tensor or numpy array, got {type(values).__name__}")
    tensor = torch.as_tensor(values).to(device=device, dtype=dtype)
    if tensor.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {tuple(tensor.shape)}")
    return tensor


def _check_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    dims = tuple(int(s) for s in shape)
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError(f"shape: expected 3 positive sizes (z, y, x), got {tuple(shape)}")
    return dims


def _per_view(values: float | Sequence[float], n_views: int, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if tensor.numel() == 1:
        tensor = tensor.expand(n_views)
    if tensor.numel() != n_views or not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name}: expected one finite value or one per view ({n_views}), got {tensor.numel()}")
    return tensor.clone()


def _sparse_csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values, size, check_invariants=False)


class SpectProjector:
    """Attenuated parallel-hole SPECT projector with a depth-dependent Gaussian collimator response.

    Holds the geometry, the attenuation map and, when ``cache`` is true, the per-view rotation
    operators and attenuation weights (``views * z * y * x`` values: 1 GB for 120 views of 128^3 in
    float32, plus about 1.6 MB per view for the rotations); without the cache they are recomputed at
    every call. The blur matrices of the last radius used are kept (``2 * z * y * x`` values).

    Args:
        shape: volume shape ``(z, y, x)``.
        spacing_mm: voxel spacing ``(sz, sy, sx)`` in mm.
        angles_deg: view angles in degrees (convention in the module docstring), shape ``(views,)``.
        radius_mm: distance from the rotation axis to the collimator face (mm), one value or one per
            view (non-circular orbit).
        mu_per_cm: linear attenuation map (1/cm), shape ``(z, y, x)``; ``None`` for no attenuation.
        response: collimator-detector response; ``None`` for an ideal collimator (no blur).
        device: torch device (``None``/"auto": CUDA when available).
        dtype: ``torch.float32`` (default) or ``torch.float64``.
        cache: keep the per-view rotation operators and attenuation weights in memory.
    """

    def __init__(
        self,
        shape: Sequence[int],
        spacing_mm: Sequence[float],
        angles_deg: Sequence[float] | torch.Tensor | np.ndarray,
        radius_mm: float | Sequence[float],
        mu_per_cm: torch.Tensor | np.ndarray | None = None,
        response: DetectorResponse | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        cache: bool = True,
    ) -> None:
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
        self.shape = _check_shape(shape)
        self.spacing_mm = check_spacing(spacing_mm)
        self.device = resolve_device(device)
        self.dtype = dtype
        self.angles_deg = torch.as_tensor(angles_deg, dtype=torch.float64).reshape(-1).clone()
        if self.angles_deg.numel() == 0 or not bool(torch.isfinite(self.angles_deg).all()):
            raise ValueError(f"angles_deg: expected at least one finite angle, got {self.angles_deg.tolist()}")
        self.radius_mm = _per_view(radius_mm, self.n_views, "radius_mm")
        if bool((self.radius_mm <= 0).any()):
            raise ValueError(f"radius_mm: expected positive distances in mm, got min {float(self.radius_mm.min())}")
        self.response = response
        self.cache = cache
        self._mu_per_mm_columns = None if mu_per_cm is None else self._columns(self._mu(mu_per_cm))
        self._rotations: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._weights: dict[int, torch.Tensor] = {}
        self._kernels: tuple[float, torch.Tensor, torch.Tensor] | None = None

    def with_response(self, response: DetectorResponse | None) -> SpectProjector:
        """The same projector with another collimator-detector ``response`` (``None``: no blur).

        The copy shares this projector's cached rotation operators and attenuation weights, e.g. to
        reconstruct without resolution recovery data simulated with it.
        """
        projector = copy.copy(self)
        projector.response = response
        projector._kernels = None
        return projector

    @property
    def n_views(self) -> int:
        """Number of views."""
        return self.angles_deg.numel()

    @property
    def projection_shape(self) -> tuple[int, int, int]:
        """Shape ``(views, z, u)`` of the projections of all views."""
        return (self.n_views, self.shape[0], self.shape[2])

    def forward(self, image: torch.Tensor | np.ndarray, views: Sequence[int] | None = None) -> torch.Tensor:
        """Project ``image`` (shape ``(z, y, x)``) to ``views`` (view indices; all when ``None``).

        Returns a tensor of shape ``(len(views), z, u)``: per detector bin, the sum over voxels of the
        voxel value times its attenuation factor times its collimator-response weight.
        """
        views = self._views(views)
        columns = self._columns(self.as_volume(image, "image"))
        z_size, y_size, x_size = self.shape
        rotated = torch.empty((y_size * x_size, z_size), device=self.device, dtype=self.dtype)
        projections = torch.empty((len(views), z_size, x_size), device=self.device, dtype=self.dtype)
        for i, view in enumerate(views):
            rotation, _ = self._rotation(view)
            torch.mm(rotation, columns, out=rotated)
            planes = rotated.view(y_size, x_size, z_size)
            weights = self._attenuation(view)
            if weights is not None:
                planes.mul_(weights)
            projections[i] = self._blur_and_sum(planes, view).T
        return projections

    def back(self, projections: torch.Tensor | np.ndarray, views: Sequence[int] | None = None) -> torch.Tensor:
        """Back project ``projections`` (shape ``(len(views), z, u)``): the exact adjoint of :meth:`forward`.

        Returns a tensor of shape ``(z, y, x)``.
        """
        views = self._views(views)
        z_size, y_size, x_size = self.shape
        projections = self.as_projections(projections, "projections", len(views))
        columns = torch.zeros((y_size * x_size, z_size), device=self.device, dtype=self.dtype)
        for i, view in enumerate(views):
            _, transposed = self._rotation(view)
            planes = self._spread(projections[i].T, view)
            weights = self._attenuation(view)
            if weights is not None:
                planes = planes * weights
            columns.addmm_(transposed, planes.reshape(y_size * x_size, z_size))
        return columns.T.reshape(z_size, y_size, x_size)

    def _views(self, views: Sequence[int] | None) -> list[int]:
        if views is None:
            return list(range(self.n_views))
        indices = [int(v) for v in views]
        if not indices or min(indices) < 0 or max(indices) >= self.n_views:
            raise ValueError(f"views: expected indices in [0, {self.n_views}), got {indices}")
        return indices

    def as_volume(self, values: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
        """``values`` as a tensor on the projector's device and dtype; a ValueError naming it unless its
        shape is :attr:`shape` ``(z, y, x)``."""
        volume = _as_tensor(values, name, 3, self.device, self.dtype)
        if tuple(volume.shape) != self.shape:
            raise ValueError(f"{name}: shape {tuple(volume.shape)} does not match the projector shape {self.shape}")
        return volume

    def as_projections(self, values: torch.Tensor | np.ndarray, name: str, n_views: int | None = None) -> torch.Tensor:
        """``values`` as a tensor on the projector's device and dtype; a ValueError naming it unless its
        shape is ``(n_views, z, u)`` (``n_views`` defaults to all views)."""
        projections = _as_tensor(values, name, 3, self.device, self.dtype)
        expected = (self.n_views if n_views is None else n_views, self.shape[0], self.shape[2])
        if tuple(projections.shape) != expected:
            raise ValueError(f"{name}: expected shape {expected} (views, z, u), got {tuple(projections.shape)}")
        return projections

    def _mu(self, mu_per_cm: torch.Tensor | np.ndarray) -> torch.Tensor:
        mu = self.as_volume(mu_per_cm, "mu_per_cm")
        check_finite_nonnegative(mu, "mu_per_cm")
        return mu / 10.0

    def _columns(self, volume: torch.Tensor) -> torch.Tensor:
        """``(z, y, x)`` -> ``(y * x, z)``: z becomes the column index shared by every rotation."""
        return volume.reshape(self.shape[0], -1).T.contiguous()

    def _rotation(self, view: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The view's rotation of activity into the detector frame, ``(depth * u, y * x)``, and its transpose.

        Each voxel's value is distributed over the four detector-frame samples around its rotated
        centre with bilinear weights (which sum to one, so activity is conserved); the transpose
        samples the detector frame at the voxel centres by bilinear interpolation.
        """
        if view in self._rotations:
            return self._rotations[view]
        depth_index, lateral_index = self._voxels_in_detector_frame(float(self.angles_deg[view]))
        transposed = _bilinear_sampling(depth_index, lateral_index, self.shape[1], self.shape[2], self.dtype)
        operators = (_transpose(transposed), transposed)
        if self.cache:
            self._rotations[view] = operators
        return operators

    def _voxels_in_detector_frame(self, angle_deg: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Continuous (depth, lateral) sample indices of every voxel centre, each of shape ``(y, x)``."""
        _, y_size, x_size = self.shape
        _, sy, sx = self.spacing_mm
        cos, sin = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
        kw = {"device": self.device, "dtype": torch.float64}
        x = ((torch.arange(x_size, **kw) - (x_size - 1) / 2.0) * sx)[None, :]
        y = ((torch.arange(y_size, **kw) - (y_size - 1) / 2.0) * sy)[:, None]
        lateral, toward_camera = x * cos - y * sin, -x * sin - y * cos
        return (y_size - 1) / 2.0 - toward_camera / sy, (x_size - 1) / 2.0 + lateral / sx

    def _detector_frame_in_volume(self, angle_deg: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Continuous (y, x) voxel indices of every detector-frame sample, each of shape ``(depth, u)``."""
        _, y_size, x_size = self.shape
        _, sy, sx = self.spacing_mm
        cos, sin = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
        kw = {"device": self.device, "dtype": torch.float64}
        toward_camera = (((y_size - 1) / 2.0 - torch.arange(y_size, **kw)) * sy)[:, None]
        lateral = ((torch.arange(x_size, **kw) - (x_size - 1) / 2.0) * sx)[None, :]
        x, y = lateral * cos - toward_camera * sin, -lateral * sin - toward_camera * cos
        return (y_size - 1) / 2.0 + y / sy, (x_size - 1) / 2.0 + x / sx

    def _attenuation(self, view: int) -> torch.Tensor | None:
        """``exp(-line integral of mu to the detector)`` in the detector frame, shape ``(depth, u, z)``.

        The mu map is interpolated (bilinear) at the detector-frame samples.
        """
        if self._mu_per_mm_columns is None:
            return None
        if view in self._weights:
            return self._weights[view]
        _, y_size, x_size = self.shape
        y_index, x_index = self._detector_frame_in_volume(float(self.angles_deg[view]))
        sampling = _bilinear_sampling(y_index, x_index, y_size, x_size, self.dtype)
        mu = torch.mm(sampling, self._mu_per_mm_columns).view(y_size, x_size, -1)
        path = torch.cumsum(mu, dim=0).sub_(mu, alpha=0.5).mul_(self.spacing_mm[1])
        weights = torch.exp(path.neg_())
        if self.cache:
            self._weights[view] = weights
        return weights

    def _response_kernels(self, view: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-depth blur matrices for the view's radius (symmetric, unit sum over the infinite lattice).

        Returns the lateral matrices side by side, ``(u, depth * u)`` with block ``d`` the matrix of
        depth plane ``d``, and the axial matrices ``(depth, z, z)``. The last radius's pair is kept.
        """
        radius = float(self.radius_mm[view])
        if self._kernels is not None and self._kernels[0] == radius:
            return self._kernels[1], self._kernels[2]
        z_size, y_size, x_size = self.shape
        sz, sy, sx = self.spacing_mm
        depth = ((y_size - 1) / 2.0 - torch.arange(y_size, device=self.device, dtype=torch.float64)) * sy
        sigma = self.response.sigma_mm((radius - depth).clamp_min(0.0))
        lateral = _gaussian_matrices(sigma, x_size, sx).permute(1, 0, 2).reshape(x_size, y_size * x_size)
        kernels = (lateral.to(self.dtype).contiguous(), _gaussian_matrices(sigma, z_size, sz).to(self.dtype))
        self._kernels = (radius, *kernels)
        return kernels

    def _blur_and_sum(self, planes: torch.Tensor, view: int) -> torch.Tensor:
        """Blur each depth plane of ``planes`` ``(depth, u, z)`` by its response and sum: ``(u, z)``."""
        if self.response is None:
            return planes.sum(dim=0)
        lateral, axial = self._response_kernels(view)
        # sum_d K_d @ P_d @ A_d as one product: (u, depth * u) @ (depth * u, z).
        return lateral @ torch.bmm(planes, axial).view(lateral.shape[1], -1)

    def _spread(self, projection: torch.Tensor, view: int) -> torch.Tensor:
        """Adjoint of :meth:`_blur_and_sum`: ``(u, z)`` -> ``(depth, u, z)``."""
        depth_size = self.shape[1]
        if self.response is None:
            return projection.expand(depth_size, -1, -1)
        lateral, axial = self._response_kernels(view)
        return torch.bmm((lateral.T @ projection).view(depth_size, -1, projection.shape[1]), axial)


def _bilinear_sampling(
    rows: torch.Tensor, columns: torch.Tensor, n_rows: int, n_columns: int, dtype: torch.dtype
) -> torch.Tensor:
    """Sparse CSR matrix ``(points, n_rows * n_columns)`` sampling a row-major grid by bilinear
    interpolation at the continuous indices ``(rows, columns)`` (any equal shapes; samples outside
    the grid read zeros)."""
    # Snap round-off (e.g. sin(pi) = 1.2e-16) so that axis-aligned views hit grid points exactly.
    rows, columns = torch.round(rows.reshape(-1) * 1e9) / 1e9, torch.round(columns.reshape(-1) * 1e9) / 1e9
    r0, c0 = torch.floor(rows), torch.floor(columns)
    fr, fc = rows - r0, columns - c0
    r = torch.stack([r0, r0, r0 + 1, r0 + 1], dim=1)
    c = torch.stack([c0, c0 + 1, c0, c0 + 1], dim=1)
    weights = torch.stack([(1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc], dim=1)
    keep = (r >= 0) & (r < n_rows) & (c >= 0) & (c < n_columns) & (weights > 0)
    crow = torch.zeros(rows.numel() + 1, device=rows.device, dtype=torch.int64)
    crow[1:] = torch.cumsum(keep.sum(dim=1), dim=0)
    index = (r * n_columns + c)[keep].to(torch.int64)  # increasing within each row
    return _sparse_csr(crow, index, weights[keep].to(dtype), (rows.numel(), n_rows * n_columns))


def _transpose(matrix: torch.Tensor) -> torch.Tensor:
    """The transpose of a sparse CSR matrix, as a sparse CSR matrix."""
    csc = matrix.to_sparse_csc()
    return _sparse_csr(csc.ccol_indices(), csc.row_indices(), csc.values(), (matrix.shape[1], matrix.shape[0]))


def _gaussian_matrices(sigma_mm: torch.Tensor, size: int, spacing_mm: float) -> torch.Tensor:
    """Toeplitz matrices ``(len(sigma), size, size)`` of sampled Gaussians, each normalised to unit sum
    over the infinite lattice (activity blurred past the detector edge is lost)."""
    reach = size + int(math.ceil(8.0 * float(sigma_mm.max()) / spacing_mm))
    offsets = torch.arange(-reach, reach + 1, device=sigma_mm.device, dtype=torch.float64) * spacing_mm
    sigma = sigma_mm.clamp_min(1e-6 * spacing_mm)[:, None]
    profile = torch.exp(-0.5 * (offsets[None, :] / sigma) ** 2)
    profile = profile / profile.sum(dim=1, keepdim=True)
    # Drop the far tails: negligible, and denormal float32 values would slow the matrix products.
    profile = torch.where(profile < 1e-12, 0.0, profile)
    index = torch.arange(size, device=sigma_mm.device)
    return profile[:, (index[:, None] - index[None, :]) + reach]


class PlanarProjector(SpectProjector):
    """Anterior/posterior planar projector: :class:`SpectProjector` at 0 and 180 degrees.

    Projections have shape ``(2, z, x)``: index 0 the anterior image, index 1 the posterior image
    mirrored left-right into the anterior's orientation, so that in both images row ``i`` is the
    volume's z index ``i`` and column ``j`` its x index ``j`` (patient left toward higher ``j``). The
    raw posterior camera image has the lateral axis reversed (column ``j`` at x index ``x_size - 1 - j``).

    ``distance_mm`` is the distance from the volume's centre (y mid-plane) to each collimator face.
    """

    def __init__(
        self,
        shape: Sequence[int],
        spacing_mm: Sequence[float],
        distance_mm: float,
        mu_per_cm: torch.Tensor | np.ndarray | None = None,
        response: DetectorResponse | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        cache: bool = True,
    ) -> None:
        super().__init__(
            shape, spacing_mm, (0.0, 180.0), distance_mm, mu_per_cm, response, device=device, dtype=dtype, cache=cache
        )

    def forward(self, image: torch.Tensor | np.ndarray, views: Sequence[int] | None = None) -> torch.Tensor:
        """Anterior (view 0) and mirrored posterior (view 1) images of ``image`` ``(z, y, x)``.

        Returns ``(len(views), z, x)``; ``(2, z, x)`` for both views (``views=None``).
        """
        views = self._views(views)
        return _mirror_posterior(super().forward(image, views), views)

    def back(self, projections: torch.Tensor | np.ndarray, views: Sequence[int] | None = None) -> torch.Tensor:
        """Exact adjoint of :meth:`forward`: ``(len(views), z, x)`` -> ``(z, y, x)``."""
        views = self._views(views)
        projections = self.as_projections(projections, "projections", len(views))
        return super().back(_mirror_posterior(projections, views), views)


def _mirror_posterior(projections: torch.Tensor, views: list[int]) -> torch.Tensor:
    flip = torch.tensor([view == 1 for view in views], device=projections.device)[:, None, None]
    return torch.where(flip, projections.flip(-1), projections)


def simulate_planar(
    activity_Bq_per_mL: torch.Tensor | np.ndarray,
    spacing_mm: Sequence[float],
    *,
    sensitivity_cps_per_MBq: float,
    acquisition_time_s: float,
    distance_mm: float,
    mu_per_cm: torch.Tensor | np.ndarray | None = None,
    response: DetectorResponse | None = None,
    noise: bool = True,
    seed: int | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Anterior/posterior planar counts images of an activity map (seed 000, eq. 2).

    ``activity_Bq_per_mL`` has shape ``(z, y, x)``; the result has shape ``(2, z, x)`` in counts, index 0
    anterior and index 1 posterior mirrored into the anterior's left-right orientation (see
    :class:`PlanarProjector`). Expected counts are ``activity * voxel volume [mL] * 1e-6 *
    sensitivity_cps_per_MBq * acquisition_time_s`` times the attenuation and collimator model; with
    ``noise`` they are replaced by Poisson samples drawn with ``seed``.
    """
    activity = _as_tensor(activity_Bq_per_mL, "activity_Bq_per_mL", 3, resolve_device(device), torch.float32)
    check_finite_nonnegative(activity, "activity_Bq_per_mL")
    if not acquisition_time_s > 0:
        raise ValueError(f"acquisition_time_s: expected a positive time in s, got {acquisition_time_s}")
    scale = counts_per_Bq_per_mL(spacing_mm, sensitivity_cps_per_MBq, acquisition_time_s)
    projector = PlanarProjector(activity.shape, spacing_mm, distance_mm, mu_per_cm, response, device=activity.device)
    expected = projector.forward(activity).mul_(scale)
    return poisson_counts(expected, seed) if noise else expected
