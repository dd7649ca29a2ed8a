"""Properties of the network's output heads (issue #33): which channel is the amplitude and which the phase,
the range each head reaches, and that every layout (separate / shared decoder, nearest / sub-pixel last
doubling, probe_big or not) lays its output out the same way.

The decoders' last convolution is set to weights 0 and chosen biases, so the logits are known exactly:
channel-k logit = bias. A sub-pixel decoder's last convolution gives 4 values per output map, which
PixelShuffle(2) takes as consecutive channels (map c <- channels 4c..4c+3, torch's documented order).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ptychoreg.core.model.network import PtychoNet

FAST = settings(max_examples=30, deadline=None, derandomize=True, database=None)
LAYOUTS = [(h, u) for h in ("separate", "shared") for u in ("nearest", "subpixel")]


def _last_conv(decoder: torch.nn.Sequential) -> torch.nn.Conv2d:
    return [m for m in decoder if isinstance(m, torch.nn.Conv2d)][-1]


def _set_logits(model: PtychoNet, amplitude: float, phase: float) -> None:
    """Make every amplitude logit `amplitude` and every phase logit `phase`, whatever the input."""
    with torch.no_grad():
        if model.heads == "shared":
            conv = _last_conv(model.decoder)
            assert conv.out_channels in (2, 8)
            conv.weight.zero_()
            per_map = conv.out_channels // 2
            conv.bias[:per_map] = amplitude
            conv.bias[per_map:] = phase
        else:
            for decoder, value in ((model.amplitude, amplitude), (model.phase, phase)):
                conv = _last_conv(decoder)
                conv.weight.zero_()
                conv.bias.fill_(value)


def _predicted_block(size: int, probe_big: bool) -> slice:
    pad = 0 if probe_big else size // 4
    return slice(pad, size - pad)


@FAST
@given(layout=st.sampled_from(LAYOUTS), probe_big=st.booleans(), size=st.sampled_from([16, 32]),
       amplitude=st.floats(-4, 4), phase=st.floats(-4, 4), members=st.integers(1, 4), seed=st.integers(0, 99))
def test_amplitude_and_phase_come_from_their_own_logits(layout, probe_big, size, amplitude, phase, members, seed):
    """Catches swapped amplitude/phase channels, or heads other than sigmoid and pi*tanh, in any layout."""
    torch.manual_seed(seed)
    heads, upsampling = layout
    model = PtychoNet(size=size, width=2, probe_big=probe_big, heads=heads, upsampling=upsampling)
    _set_logits(model, amplitude, phase)
    out = model(torch.rand(2, members, size, size) * 5)
    assert out.shape == (2, members, size, size) and out.dtype == torch.complex64
    block = _predicted_block(size, probe_big)
    inside = out[..., block, block]
    expected_amplitude = 1 / (1 + math.exp(-amplitude))
    expected_phase = math.pi * math.tanh(phase)
    torch.testing.assert_close(inside.abs(), torch.full(inside.shape, expected_amplitude), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(inside.angle(), torch.full(inside.shape, expected_phase), atol=1e-4, rtol=1e-5)
    outside = out.clone()
    outside[..., block, block] = 0
    assert outside.abs().max() == 0  # nothing predicted outside the block


@pytest.mark.parametrize("heads,upsampling", LAYOUTS)
def test_each_head_reaches_its_whole_range(heads, upsampling):
    """Catches an amplitude head that cannot reach 0 or 1 and a phase head that cannot reach -pi or +pi."""
    model = PtychoNet(size=16, width=2, heads=heads, upsampling=upsampling)
    x = torch.rand(1, 1, 16, 16)
    reached = {}
    for a, p in ((20.0, 4.0), (-20.0, -4.0), (0.0, 0.0)):
        _set_logits(model, a, p)
        out = model(x)
        reached[(a, p)] = (out.abs().mean().item(), out.angle().mean().item())
    assert reached[(20.0, 4.0)][0] > 0.9999 and reached[(-20.0, -4.0)][0] < 1e-6
    assert reached[(20.0, 4.0)][1] > 3.13 and reached[(-20.0, -4.0)][1] < -3.13
    assert reached[(0.0, 0.0)] == pytest.approx((0.5, 0.0), abs=1e-6)
    # Huge logits never leave the bounds (or turn into NaN).
    _set_logits(model, 1e4, 1e4)
    out = model(x)
    assert torch.isfinite(out).all() and out.abs().max() <= 1 and out.angle().abs().max() <= math.pi + 1e-6


@given(seed=st.integers(0, 2**16), probe_big=st.booleans())
@settings(max_examples=10, deadline=None, derandomize=True, database=None)
def test_pushing_the_weights_reaches_the_bounds_not_beyond(seed, probe_big):
    """Catches an unbounded head (exp, softplus, raw logit) that looks bounded only at small initial weights."""
    torch.manual_seed(seed)
    model = PtychoNet(size=16, width=2, probe_big=probe_big, heads="shared", upsampling="subpixel")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(5)
    out = model(torch.rand(4, 1, 16, 16) * 10)
    block = _predicted_block(16, probe_big)
    amplitude, phase = out.abs()[..., block, block], out.angle()
    assert torch.isfinite(out).all()
    assert amplitude.min() >= 0 and amplitude.max() <= 1 and phase.abs().max() <= math.pi + 1e-6


@pytest.mark.parametrize("probe_big", [True, False])
def test_every_layout_lays_its_output_out_the_same_way(probe_big):
    """Catches a layout whose output shape, padding or channel meaning differs from separate/nearest."""
    x = torch.rand(3, 4, 32, 32)
    outputs = {}
    for heads, upsampling in LAYOUTS:
        model = PtychoNet(size=32, gridsize=2, width=2, probe_big=probe_big, heads=heads, upsampling=upsampling)
        _set_logits(model, 0.7, -1.3)
        outputs[(heads, upsampling)] = model(x)
        assert model.predicted_size == (32 if probe_big else 16)
    reference = outputs[("separate", "nearest")]
    for layout, out in outputs.items():
        torch.testing.assert_close(out, reference, atol=1e-6, rtol=1e-6, msg=f"{layout} differs from separate/nearest")


def test_the_two_logit_maps_are_two_halves_of_the_shared_subpixel_conv():
    """Catches a shared sub-pixel decoder whose PixelShuffle interleaves amplitude and phase values."""
    model = PtychoNet(size=16, width=2, heads="shared", upsampling="subpixel")
    _set_logits(model, 0.0, 0.0)
    conv = _last_conv(model.decoder)
    x = torch.rand(1, 1, 16, 16)
    base = model(x)
    with torch.no_grad():
        conv.bias[:4] = 3.0
    moved = model(x)
    assert torch.allclose(moved.angle(), base.angle(), atol=1e-6)
    assert (moved.abs() - base.abs()).min() > 0.4  # every pixel, so each sub-pixel position is amplitude


@settings(max_examples=12, deadline=None, derandomize=True, database=None)
@given(layout=st.sampled_from(LAYOUTS), probe_big=st.booleans(), groups=st.integers(2, 3), members=st.integers(2, 4),
       seed=st.integers(0, 99))
def test_each_member_of_each_group_is_predicted_from_its_own_pattern(layout, probe_big, groups, members, seed):
    """Catches a network that mixes up groups and members when it flattens a batch (member-major instead of
    group-major): one network predicts every pattern alone (its weights do not depend on the gridsize), so
    member c of group g in a batch is exactly what that pattern gives on its own."""
    torch.manual_seed(seed)
    heads, upsampling = layout
    model = PtychoNet(size=16, gridsize=2, width=2, probe_big=probe_big, heads=heads, upsampling=upsampling)
    x = torch.rand(groups, members, 16, 16) * 5
    with torch.no_grad():
        out = model(x)
        for g in range(groups):
            for c in range(members):
                torch.testing.assert_close(out[g, c], model(x[g : g + 1, c : c + 1])[0, 0], atol=1e-5, rtol=1e-4,
                                           msg=f"group {g} member {c}")
