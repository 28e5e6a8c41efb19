"""DLPVCLib.networks: architectures by name, maximum normalisation and activity conservation (seed 003)."""

from __future__ import annotations

import pytest
import torch

from DLPVCLib.networks import ARCHITECTURES, MIRRORS, DLPVCModel, build_network, mirror_ensemble, required_multiple
from DosimetryCore.learning.networks import R2UNet

SMALL_CHANNELS = {
    "r2unet": (2, 4, 8),
    "unet": (2, 4, 8),
    "attentionunet": (2, 4, 8),
    "basicunetplusplus": (2, 2, 4, 4, 4),
}


def activity(shape=(2, 1, 16, 16, 16), seed: int = 0) -> torch.Tensor:
    """Random non-negative activity (Bq/mL) with a hot cube, as a batch of SPECT volumes."""
    generator = torch.Generator().manual_seed(seed)
    x = 100.0 * torch.rand(shape, generator=generator)
    x[..., 4:8, 4:8, 4:8] += 5000.0
    return x


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_each_architecture_keeps_the_3d_shape(arch):
    torch.manual_seed(0)
    size = 32 if arch == "basicunetplusplus" else 16  # 4 downsamplings need 2^3 voxels left for instance norm
    network = build_network(arch, in_channels=2, out_channels=1, channels=SMALL_CHANNELS[arch])
    output = network(torch.rand(1, 2, size, size, size))
    assert isinstance(output, torch.Tensor)
    assert output.shape == (1, 1, size, size, size)


def test_names_are_checked_and_case_insensitive():
    assert isinstance(build_network("R2UNet", channels=(2, 4)), R2UNet)
    with pytest.raises(ValueError, match=r"unknown network 'vnet'; choose one of r2unet, unet"):
        build_network("vnet")
    with pytest.raises(ValueError, match="basicunetplusplus has 5 levels"):
        build_network("basicunetplusplus", channels=(2, 4, 8))
    assert required_multiple("r2unet") == 8
    assert required_multiple("basicunetplusplus") == 16
    assert required_multiple("unet", (2, 4)) == 2


@pytest.mark.parametrize("arch", ["r2unet", "unet"])
def test_activity_is_conserved_exactly_and_output_is_non_negative(arch):
    torch.manual_seed(1)
    model = DLPVCModel(arch, channels=SMALL_CHANNELS[arch]).eval()
    x = activity()
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert (y >= 0).all()
    totals_in = x.double().sum(dim=(1, 2, 3, 4))
    totals_out = y.double().sum(dim=(1, 2, 3, 4))
    torch.testing.assert_close(totals_out, totals_in, rtol=1e-5, atol=0)
    torch.testing.assert_close(y.sum(dim=(1, 2, 3, 4)), x.sum(dim=(1, 2, 3, 4)), rtol=1e-5, atol=0)


def test_scale_equivariance():
    torch.manual_seed(2)
    model = DLPVCModel("r2unet", channels=(2, 4)).eval()
    x = activity(seed=3)
    with torch.no_grad():
        y = model(x)
        # powers of two scale exactly: the normalised input, hence the network output, is unchanged
        torch.testing.assert_close(model(4.0 * x), 4.0 * y, rtol=0, atol=0)
        torch.testing.assert_close(model(3.7e6 * x), 3.7e6 * y, rtol=1e-5, atol=0)


def test_samples_are_normalised_independently():
    torch.manual_seed(4)
    model = DLPVCModel("r2unet", channels=(2, 4)).eval()
    x = activity(seed=5)
    x[1] *= 1000.0
    with torch.no_grad():
        batch = model(x)
        single = model(x[:1])
    torch.testing.assert_close(batch[:1], single, rtol=1e-6, atol=0)


def test_bad_inputs_are_refused():
    model = DLPVCModel("r2unet", channels=(2, 4, 8)).eval()
    x = activity()
    x[1] = 0.0
    with pytest.raises(ValueError, match=r"sample\(s\) \[1\] are zero everywhere"):
        model(x)
    with pytest.raises(ValueError, match="negative activity"):
        model(activity() - 200.0)
    nan = activity()
    nan[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model(nan)
    with pytest.raises(ValueError, match="multiple of 4"):
        model(activity((1, 1, 16, 16, 18)))


def test_rebuilt_from_config_gives_identical_outputs():
    torch.manual_seed(6)
    model = DLPVCModel("attentionunet", channels=[2, 4], dropout=0.0).eval()
    assert model.config == {"arch": "attentionunet", "channels": [2, 4], "dropout": 0.0}
    rebuilt = DLPVCModel.from_config(model.config).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = activity()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)


def test_mirror_ensemble_averages_the_eight_mirror_images_and_keeps_the_activity():
    torch.manual_seed(0)
    model = DLPVCModel("r2unet", channels=SMALL_CHANNELS["r2unet"]).eval()
    x = activity((1, 1, 16, 16, 16))
    reports = []
    with torch.no_grad():
        ensemble = mirror_ensemble(model, x, lambda fraction, message: reports.append(message))
        # mirroring the input mirrors the ensemble: it is equivariant, as one pass is not
        mirrored = mirror_ensemble(model, x.flip(3))
        one_pass = model(x)
    assert len(set(MIRRORS)) == 8 and len(reports) == 8 and reports[-1] == "mirror image 8/8"
    torch.testing.assert_close(mirrored, ensemble.flip(3), rtol=1e-5, atol=1e-5 * float(ensemble.max()))
    assert (model(x.flip(3)) - one_pass.flip(3)).abs().max() > 1e-3 * one_pass.max()
    assert ensemble.sum(dtype=torch.float64).item() == pytest.approx(x.sum(dtype=torch.float64).item(), rel=1e-5)
