"""Unit direction vectors for particle transport: isotropic sampling and rotation by a scattering angle.

Directions are tensors of shape (n, 3) whose components follow the voxel-array axes (z, y, x); both
operations are symmetric in the axes, so the order does not matter to them.
"""

from __future__ import annotations

import math

import torch


def isotropic_directions(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``n`` unit vectors uniformly distributed on the sphere, float32, shape (n, 3)."""
    cos_theta = 2.0 * torch.rand(n, generator=generator, device=device) - 1.0
    phi = 2.0 * math.pi * torch.rand(n, generator=generator, device=device)
    sin_theta = torch.sqrt(torch.clamp(1.0 - cos_theta * cos_theta, min=0.0))
    return torch.stack((cos_theta, sin_theta * torch.cos(phi), sin_theta * torch.sin(phi)), dim=1)


def rotate_directions(directions: torch.Tensor, cos_theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Turn each direction by polar angle theta (given as cos theta) about itself, at azimuth ``phi`` (rad).

    The usual transport formula (e.g. the EGS/MCNP direction-cosine update), with the special case of a
    direction along the first axis handled separately. Returns new unit vectors, shape (n, 3).

    Args:
        directions: unit vectors, shape (n, 3).
        cos_theta: cosines of the scattering angles, shape (n,).
        phi: azimuthal angles in radians, shape (n,).
    """
    w, u, v = directions.unbind(dim=1)
    sin_theta = torch.sqrt(torch.clamp(1.0 - cos_theta * cos_theta, min=0.0))
    cos_phi, sin_phi = torch.cos(phi), torch.sin(phi)
    perpendicular = torch.sqrt(torch.clamp(1.0 - w * w, min=1e-12))
    along_axis = perpendicular < 1e-4
    new_u = u * cos_theta + sin_theta * (u * w * cos_phi - v * sin_phi) / perpendicular
    new_v = v * cos_theta + sin_theta * (v * w * cos_phi + u * sin_phi) / perpendicular
    new_w = w * cos_theta - sin_theta * cos_phi * perpendicular
    sign = torch.where(w < 0, -1.0, 1.0)
    new_u = torch.where(along_axis, sin_theta * cos_phi, new_u)
    new_v = torch.where(along_axis, sin_theta * sin_phi, new_v)
    new_w = torch.where(along_axis, sign * cos_theta, new_w)
    rotated = torch.stack((new_w, new_u, new_v), dim=1)
    return rotated / torch.linalg.vector_norm(rotated, dim=1, keepdim=True)
