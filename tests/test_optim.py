"""Our Adam must be torch.optim.Adam bit for bit (it exists only to skip torch.optim's start-up cost)."""

from __future__ import annotations

import torch

from ptychoreg.model.network import PtychoNet
from ptychoreg.optim import Adam


def _train(make_optimiser, steps=5):
    torch.manual_seed(0)
    model = PtychoNet(size=16, width=2)
    optimiser = make_optimiser(model.parameters())
    x = torch.rand(4, 1, 16, 16)
    for _ in range(steps):
        loss = model(x).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return [p.detach().clone() for p in model.parameters()]


def test_matches_torch_adam_bitwise():
    ours = _train(lambda p: Adam(p, lr=1e-2))
    reference = _train(lambda p: torch.optim.Adam(p, lr=1e-2, foreach=False))
    assert all(torch.equal(a, b) for a, b in zip(ours, reference))


def test_changes_parameters():
    torch.manual_seed(0)
    before = [p.detach().clone() for p in PtychoNet(size=16, width=2).parameters()]
    after = _train(lambda p: Adam(p, lr=1e-2), steps=1)
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
