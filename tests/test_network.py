from __future__ import annotations

import math

import pytest
import torch

from ptychoreg.core.model.network import PtychoNet, predict_patches, prediction_window


LAYOUTS = [{}, {"heads": "shared"}, {"upsampling": "subpixel"}, {"heads": "shared", "upsampling": "subpixel"}]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: "-".join(layout.values()) or "default")
@pytest.mark.parametrize("gridsize", [1, 2])
@pytest.mark.parametrize("probe_big", [True, False])
def test_shapes_and_bounds(gridsize, probe_big, layout):
    torch.manual_seed(0)
    model = PtychoNet(size=32, gridsize=gridsize, width=4, probe_big=probe_big, **layout)
    x = torch.rand(3, gridsize**2, 32, 32)
    out = model(x)
    assert out.shape == (3, gridsize**2, 32, 32) and out.dtype == torch.complex64
    amplitude, phase = out.abs(), out.angle()
    assert amplitude.max() <= 1 and phase.abs().max() <= math.pi + 1e-6
    if not probe_big:  # only the central N/2 is predicted; the rest is zero
        assert amplitude[..., :8, :].abs().max() == 0 and amplitude[..., 8:24, 8:24].min() > 0
    else:
        assert amplitude.min() > 0


def test_width_scales_weights():
    small, large = PtychoNet(width=4), PtychoNet(width=8)
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert 3.5 < count(large) / count(small) < 4.1


def test_prediction_window_covers_predicted_block():
    big = prediction_window(PtychoNet(size=32, probe_big=True))
    small = prediction_window(PtychoNet(size=32, probe_big=False))
    assert (big > 0).all()
    assert (small[8:24, 8:24] > 0).all() and small[:8].abs().max() == 0


def test_gridsize_two_prediction_merges_members():
    torch.manual_seed(0)
    model = PtychoNet(size=32, gridsize=2, width=4)
    x = torch.rand(2, 4, 32, 32)
    offsets = torch.tensor([[[-2.0, -2], [2, -2], [-2, 2], [2, 2]]] * 2)
    merged = predict_patches(model, x, offsets, prediction_window(model))
    raw = model(x)
    assert merged.shape == raw.shape and not torch.allclose(merged, raw)


def test_one_network_predicts_every_member_so_weights_do_not_depend_on_gridsize():
    torch.manual_seed(0)
    single, grouped = PtychoNet(size=32, gridsize=1, width=4), PtychoNet(size=32, gridsize=2, width=4)
    grouped.load_state_dict(single.state_dict())  # same shapes: a gridsize-1 model starts a gridsize-2 run
    x = torch.rand(2, 4, 32, 32)
    together = grouped(x)
    for member in range(4):
        torch.testing.assert_close(together[:, member], single(x[:, member : member + 1])[:, 0])


def test_rejects_sizes_the_pooling_cannot_halve():
    with pytest.raises(ValueError, match="multiple of 8"):
        PtychoNet(size=20)


def test_the_layout_options_build_what_they_name():
    def convs_at_full_resolution(model):
        # a 3x3 conv runs at full resolution when it sees the 32x32 map: trace the shapes
        seen = []
        hooks = [m.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[-1])) for m in model.modules()
                 if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
        model(torch.rand(1, 1, 32, 32))
        for hook in hooks:
            hook.remove()
        return seen.count(32)

    default = PtychoNet(size=32, width=4)
    shared = PtychoNet(size=32, width=4, heads="shared")
    subpixel = PtychoNet(size=32, width=4, upsampling="subpixel")
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert hasattr(shared, "decoder") and not hasattr(shared, "phase") and count(shared) < 0.8 * count(default)
    assert convs_at_full_resolution(default) == 2 + 2 * 2  # the encoder's first block and each decoder's last
    assert convs_at_full_resolution(subpixel) == 2  # the encoder's only: the decoders end at half resolution
    assert [type(m).__name__ for m in subpixel.phase][-1] == "PixelShuffle"


def test_the_default_layout_is_ptychopinns_and_keeps_its_weights():
    # Bundles written before the layout options load unchanged: same names and shapes, same initialisation.
    torch.manual_seed(0)
    named = PtychoNet(size=32, width=4, heads="separate", upsampling="nearest").state_dict()
    torch.manual_seed(0)
    default = PtychoNet(size=32, width=4).state_dict()
    assert list(named) == list(default) and all(torch.equal(named[k], default[k]) for k in named)
    assert {k.split(".")[0] for k in default} == {"encoder", "amplitude", "phase"}


def test_rejects_unknown_layouts():
    with pytest.raises(ValueError, match="heads 'joint'"):
        PtychoNet(size=32, heads="joint")
