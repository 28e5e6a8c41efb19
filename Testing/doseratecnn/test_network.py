"""DoseRateCNNLib.network and .inference: shapes, the residual on VDK, and whole-volume inference equal to
pack-by-pack inference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from DoseRateCNNLib.inference import predict_volume
from DoseRateCNNLib.network import HALF_PACK, PACK_SLICES, ResidualDoseNet


@pytest.fixture(scope="module")
def model() -> ResidualDoseNet:
    torch.manual_seed(3)
    net = ResidualDoseNet()
    net.train()
    with torch.no_grad():  # move the BatchNorm running statistics away from their initial values
        for _ in range(3):
            net(torch.rand(2, 1, 13, 32, 32), torch.rand(2, 1, 13, 32, 32), torch.rand(2, 1, 3, 32, 32))
    return net.eval()


def test_a_pack_of_11_slices_gives_one_slice_and_the_vdk_is_added(model):
    activity, density = torch.rand(3, 1, PACK_SLICES, 32, 48), torch.rand(3, 1, PACK_SLICES, 32, 48)
    vdk = torch.rand(3, 1, 1, 32, 48)
    with torch.no_grad():
        out = model(activity, density, vdk)
        shifted = model(activity, density, vdk + 1.0)
    assert out.shape == (3, 1, 1, 32, 48)
    torch.testing.assert_close(shifted - out, torch.ones_like(out))


def test_whole_volume_inference_equals_pack_by_pack(model):
    torch.manual_seed(4)
    activity, density, vdk = torch.rand(3, 17, 30, 20).unbind(0)  # odd in-plane size: padded and cropped
    whole = predict_volume(model, activity, density, vdk)
    chunked = predict_volume(model, activity, density, vdk, chunk_slices=4)
    padded = [F.pad(t, (0, 12, 0, 2, HALF_PACK, HALF_PACK)) for t in (activity, density)]
    vdk_padded = F.pad(vdk, (0, 12, 0, 2))
    with torch.no_grad():
        packs = [
            model(padded[0][None, None, i : i + PACK_SLICES], padded[1][None, None, i : i + PACK_SLICES],
                  vdk_padded[None, None, i : i + 1])[0, 0, 0, :30, :20]
            for i in range(17)
        ]  # fmt: skip
    torch.testing.assert_close(whole, torch.stack(packs), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)
    assert whole.shape == (17, 30, 20)


def test_inference_refuses_mismatched_inputs(model):
    with pytest.raises(ValueError, match="one shape"):
        predict_volume(model, torch.rand(5, 16, 16), torch.rand(5, 16, 16), torch.rand(4, 16, 16))
    with pytest.raises(ValueError, match="chunk_slices"):
        predict_volume(model, *torch.rand(3, 5, 16, 16).unbind(0), chunk_slices=0)
