"""Tests of DosimetryCore.dose.electrons and .kernels: electron ranges, beta point kernel, voxel S-value kernels,
the kernel cache and the kernel shipped for 4.8 mm voxels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from DosimetryCore.core.resources import kernels_dir
from DosimetryCore.core.volume import unit_of
from DosimetryCore.dose import electron_physics, electrons, kernels
from DosimetryCore.physics.nuclides import load_nuclide

# NIST ESTAR, liquid water: CSDA range (g/cm^2) and collision stopping power (MeV cm^2/g).
ESTAR_MEV = np.array([0.01, 0.1, 0.2, 0.5])
ESTAR_CSDA_G_PER_CM2 = np.array([2.515e-4, 1.431e-2, 4.488e-2, 1.766e-1])
ESTAR_COLLISION_MEV_CM2_PER_G = np.array([22.56, 4.115, 2.793, 2.034])

SMALL = {"beta_size": 5, "photon_size": 11, "photon_histories": 20_000, "batches": 4, "seed": 3}


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """One torch thread: the element-wise transport steps run faster so on the shared 2-core test machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def electron_MeV_per_decay() -> float:
    data = load_nuclide("Lu-177")
    return data.mean_energy_per_decay_MeV("beta") + data.mean_energy_per_decay_MeV("electron")


# --------------------------------------------------------------------------------------------------------------
# electrons


def test_stopping_power_and_csda_range_match_estar():
    stopping = electron_physics.collision_stopping_power_MeV_cm2_per_g(ESTAR_MEV)
    np.testing.assert_allclose(stopping, ESTAR_COLLISION_MEV_CM2_PER_G, rtol=0.005)
    np.testing.assert_allclose(electron_physics.csda_range_g_per_cm2(ESTAR_MEV), ESTAR_CSDA_G_PER_CM2, rtol=0.02)


def test_sampled_electron_energies_have_the_decay_data_mean():
    data = load_nuclide("Lu-177")
    generator = torch.Generator().manual_seed(2)
    energies = electrons.sample_electron_energies(data, 400_000, generator, torch.device("cpu")).double()
    per_decay = energies.mean().item() * (np.sum(data.beta_yields) + np.sum(data.electron_yields))
    standard_error = energies.std().item() / np.sqrt(len(energies)) * (1 + np.sum(data.electron_yields))
    assert per_decay == pytest.approx(electron_MeV_per_decay(), abs=4 * standard_error)
    assert energies.max().item() <= data.beta_spectrum_edges_MeV[-1] + 1e-6


def test_beta_point_kernel_conserves_energy_and_stays_within_the_csda_range():
    shipped = electrons.beta_point_kernel("Lu-177")  # from Resources/Kernels
    small = electrons.electron_point_kernel("Lu-177", electrons=20_000, seed=4)
    for kernel in (shipped, small):
        assert kernel.fractions.sum() == pytest.approx(1.0)
        assert (kernel.fractions >= 0).all()
        assert kernel.edges_g_per_cm2[-1] <= 1.03 * electron_physics.csda_range_g_per_cm2(0.4978)
    # 177Lu in water: half the electron energy within ~0.17 mm, 90 % within ~0.59 mm (published values are
    # checked in test_dose_electron_reference.py).
    assert 0.01 < shipped.radius_g_per_cm2(0.5) < 0.025
    assert 0.045 < shipped.radius_g_per_cm2(0.9) < 0.07
    assert small.radius_g_per_cm2(0.9) == pytest.approx(shipped.radius_g_per_cm2(0.9), rel=0.05)


def test_beta_voxel_fractions_scale_with_density_and_voxel_size():
    radial = electrons.beta_point_kernel("Lu-177")
    large = electrons.beta_voxel_fractions(radial, (4.8, 4.8, 4.8), 1.04, (9, 9, 9))
    small = electrons.beta_voxel_fractions(radial, (0.5, 0.5, 0.5), 1.04)
    assert large.sum() == pytest.approx(1.0) and small.sum() == pytest.approx(1.0)
    assert large[4, 4, 4] == pytest.approx(0.93, abs=0.01)
    assert small[tuple(n // 2 for n in small.shape)] < 0.75
    # Scaling theorem: lung at 0.26 g/cm^3 with 4 mm voxels = tissue at 1.04 g/cm^3 with 1 mm voxels.
    lung = electrons.beta_voxel_fractions(radial, (4.0, 4.0, 4.0), 0.26, (5, 5, 5))
    tissue = electrons.beta_voxel_fractions(radial, (1.0, 1.0, 1.0), 1.04, (5, 5, 5))
    np.testing.assert_allclose(lung, tissue, atol=2e-3)


def test_anisotropic_beta_kernel_keeps_only_the_symmetries_of_the_grid():
    beta, outside = kernels.beta_kernel((3.0, 0.98, 0.98), 9)
    assert beta.shape == (9, 9, 9) and outside < 1e-3
    np.testing.assert_allclose(beta, beta.transpose(0, 2, 1))  # x <-> y
    np.testing.assert_allclose(beta, beta[::-1, ::-1, ::-1])
    assert beta[4, 4, 5] > beta[5, 4, 4]  # 0.98 mm neighbour gets more than the 3 mm one
    scale = kernels.mGy_per_MBq_s_per_MeV((3.0, 0.98, 0.98), kernels.KERNEL_DENSITY_G_PER_CM3)
    assert beta.sum() == pytest.approx(electron_MeV_per_decay() * scale, rel=1e-3)


# --------------------------------------------------------------------------------------------------------------
# voxel S-value kernels


@pytest.fixture(scope="module")
def shipped():
    """The kernel shipped for 4.8 mm voxels."""
    return kernels.voxel_kernel((4.8, 4.8, 4.8))


def test_shipped_kernel_is_loaded_not_generated(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the shipped 4.8 mm kernel should come from Resources/Kernels")

    monkeypatch.setattr(kernels, "generate_kernel", refuse)
    kernel = kernels.voxel_kernel(4.8)
    assert kernel.provenance["cache_file"].endswith(".npz")
    assert (kernels_dir() / kernel.provenance["cache_file"]).stat().st_size < 2_000_000


def test_shipped_kernel_values(shipped):
    scale = kernels.mGy_per_MBq_s_per_MeV((4.8, 4.8, 4.8), kernels.KERNEL_DENSITY_G_PER_CM3)
    data = load_nuclide("Lu-177")
    assert shipped.beta.shape == (9, 9, 9) and shipped.photon.shape == (99, 99, 99)
    assert shipped.beta.sum() == pytest.approx(electron_MeV_per_decay() * scale, rel=1e-4)
    # Photon energy absorbed within +-23.8 cm in infinite soft tissue: the fraction recorded by the generator.
    absorbed = shipped.provenance["photon"]["absorbed_fraction_in_kernel"]
    assert 0.75 < absorbed < 0.95
    photon_above_cutoff = data.mean_energy_per_decay_MeV("photon") - 0.000288
    assert shipped.photon.sum() == pytest.approx((photon_above_cutoff * absorbed + 0.000288) * scale, rel=2e-3)
    photon = shipped.photon
    np.testing.assert_array_equal(photon, photon[::-1, :, :])
    np.testing.assert_allclose(photon, photon.transpose(2, 0, 1), rtol=1e-6)
    assert photon[49, 49, 49] > photon[49, 49, 50] > photon[49, 49, 60] > photon[49, 49, 98] > 0
    assert shipped.provenance["photon"]["relative_uncertainty_centre"] < 0.005
    total = shipped.total()
    assert total.shape == (99, 99, 99)
    assert total[49, 49, 49] == pytest.approx(shipped.beta[4, 4, 4] + photon[49, 49, 49])


def test_small_generated_kernel_agrees_with_the_shipped_one_near_the_source(shipped):
    kernel = kernels.generate_kernel((4.8, 4.8, 4.8), **SMALL)
    relative = kernel.provenance["photon"]["relative_uncertainty_centre"]
    centre = float(kernel.photon[5, 5, 5])
    assert centre == pytest.approx(float(shipped.photon[49, 49, 49]), abs=4 * relative * centre)
    np.testing.assert_allclose(kernel.beta, shipped.beta[2:7, 2:7, 2:7], rtol=0.02, atol=1e-6)


def test_kernel_cache_round_trip(tmp_path, monkeypatch):
    first = kernels.voxel_kernel((4.0, 2.0, 2.0), cache_dir=tmp_path, **SMALL)
    records = list(tmp_path.glob("*.json"))
    assert len(records) == 1 and records[0].with_suffix(".npz").is_file()
    record = json.loads(records[0].read_text())
    parameters = record["parameters"]
    assert parameters["spacing_mm"] == [4.0, 2.0, 2.0]
    assert parameters["photon_histories"] == 20_000 and parameters["seed"] == 3
    assert parameters["engine_version"] and "ICRP" in parameters["nuclide_source"]

    def cache_miss(*args, **kwargs):
        raise LookupError("cache miss")

    monkeypatch.setattr(kernels, "generate_kernel", cache_miss)
    second = kernels.voxel_kernel((4.0, 2.0, 2.0), cache_dir=tmp_path, **SMALL)
    np.testing.assert_allclose(second.photon, first.photon, rtol=1e-6)
    np.testing.assert_array_equal(second.beta, first.beta)
    with pytest.raises(LookupError, match="cache miss"):  # another seed is another kernel
        kernels.voxel_kernel((4.0, 2.0, 2.0), cache_dir=tmp_path, **{**SMALL, "seed": 4})


def test_kernel_image_is_centred_with_unit_and_provenance(shipped):
    image = kernels.kernel_image(shipped)
    assert image.GetSize() == (99, 99, 99)
    assert image.GetSpacing() == pytest.approx((4.8, 4.8, 4.8))
    assert image.TransformIndexToPhysicalPoint((49, 49, 49)) == pytest.approx((0.0, 0.0, 0.0))
    assert unit_of(image) == kernels.KERNEL_UNIT
    assert json.loads(image.GetMetaData(kernels.PROVENANCE_KEY))["parameters"]["photon_size"] == [99, 99, 99]
    assert sitk.GetArrayViewFromImage(image)[49, 49, 49] == pytest.approx(shipped.total()[49, 49, 49])


@pytest.mark.parametrize("bad", [{"beta_size": 4}, {"photon_size": (9, 9)}, {"batches": 1}])
def test_bad_kernel_settings_are_refused(bad, tmp_path):
    with pytest.raises(ValueError):
        kernels.voxel_kernel((4.8, 4.8, 4.8), cache_dir=tmp_path, **{**SMALL, **bad})
    with pytest.raises(ValueError, match="spacing"):
        kernels.voxel_kernel((4.8, -1.0, 4.8), cache_dir=tmp_path)


@pytest.mark.parametrize(("spacing", "message"), [(0.05, "outside 0.1-100 mm"), (250.0, "is the spacing in mm")])
def test_absurd_voxel_sizes_are_refused(spacing, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        kernels.voxel_kernel(spacing, cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_a_beta_kernel_losing_the_electron_energy_is_refused_not_cached(tmp_path):
    with pytest.raises(ValueError, match="beyond its edge"):
        kernels.voxel_kernel(0.15, cache_dir=tmp_path, **{**SMALL, "beta_size": 3})
    assert not list(tmp_path.iterdir())


def test_generating_a_kernel_says_so_with_the_expected_time(tmp_path):
    messages = []
    kernels.voxel_kernel((4.0, 2.0, 2.0), cache_dir=tmp_path, progress=lambda f, m: messages.append(m), **SMALL)
    assert messages[0].startswith("no stored kernel for 2 x 2 x 4 mm voxels: generating it (about 1 min")


def test_a_truncated_kernel_cache_file_is_reported_not_a_traceback(tmp_path):
    kernels.voxel_kernel((4.0, 2.0, 2.0), cache_dir=tmp_path, **SMALL)
    (npz,) = tmp_path.glob("*.npz")
    npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    with pytest.raises(ValueError, match="is damaged .*delete both files"):
        kernels.voxel_kernel((4.0, 2.0, 2.0), cache_dir=tmp_path, **SMALL)
