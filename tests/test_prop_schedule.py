"""The learning-rate schedule over a real run (issue #33): `lr_schedule: onecycle` in train_model.

Observed, not re-derived: a global optimiser step pre-hook records the learning rate every optimiser step
of the real `train_model` actually uses, on a tiny synthetic dataset (16 x 16 patterns, width 2).
The shape asked for (core/training.py, docs/quality-experiments.md): warm up to learning_rate over the
first 30 % of the steps, then anneal to ~0 by the last step; one scheduler step per batch.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from torch.optim.optimizer import register_optimizer_step_pre_hook

from conftest import save_npz, synthetic_arrays
from ptychoreg.core.config import Config
from ptychoreg.core.contract import load_npz
from ptychoreg.core.training import train_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = save_npz(tmp_path_factory.mktemp("schedule") / "tiny.npz", synthetic_arrays(n=30, size=16))
    return load_npz(path)


def _config(**train) -> Config:
    gridsize = train.pop("gridsize", 1)
    base = {"max_epochs": 4, "batch_size": 5, "learning_rate": 0.01, "lr_schedule": "onecycle", "val_fraction": 0.2,
            "seed": 3, "loss": "gaussian"}
    return Config.model_validate({"model": {"width": 2, "gridsize": gridsize}, "train": {**base, **train}})


def _observed_run(config: Config, data, monkeypatch) -> tuple[list[float], list[int]]:
    """(learning rate of every optimiser step, total_steps of every OneCycleLR built) of one real run."""
    rates: list[float] = []
    built: list[int] = []

    class Recorded(torch.optim.lr_scheduler.OneCycleLR):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self.total_steps)

    monkeypatch.setattr(torch.optim.lr_scheduler, "OneCycleLR", Recorded)
    handle = register_optimizer_step_pre_hook(
        lambda optimiser, args, kwargs: rates.append(optimiser.param_groups[0]["lr"]))
    try:
        train_model(config, data, log=lambda _: None)
    finally:
        handle.remove()
    return rates, built


def _batches_per_epoch(config: Config, n_groups: int) -> int:
    n_train = n_groups - int(n_groups * config.train.val_fraction)
    return math.ceil(n_train / config.train.batch_size)


def test_onecycle_peaks_at_the_learning_rate_at_30_percent_and_anneals_to_zero(tiny, monkeypatch):
    """Catches onecycle stepped per epoch, sized on all groups, off by a step, or peaking elsewhere."""
    config = _config()
    rates, built = _observed_run(config, tiny, monkeypatch)
    steps = 4 * 5
    assert len(rates) == steps and built == [steps]
    peak = int(np.argmax(rates))
    assert rates[peak] == pytest.approx(0.01, rel=1e-9)
    assert peak == round(0.3 * steps) - 1  # the 6th of 20 steps: the end of the first 30 %
    assert rates[0] < 0.1 * 0.01  # a warm-up, from well below the peak
    assert rates[-1] < 1e-3 * 0.01  # annealed to ~0 on the very last step
    assert all(a < b for a, b in zip(rates[:peak], rates[1 : peak + 1]))  # rises to the peak
    assert all(a > b for a, b in zip(rates[peak:-1], rates[peak + 1 :]))  # then only falls


@given(batch_size=st.integers(2, 7), max_epochs=st.integers(2, 4), val_fraction=st.sampled_from([0.0, 0.2, 0.3]),
       gridsize=st.sampled_from([1, 2]), n_groups=st.integers(12, 30))
@settings(max_examples=8, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_onecycle_takes_one_step_per_batch_over_the_whole_run(tiny, monkeypatch, batch_size, max_epochs,
                                                              val_fraction, gridsize, n_groups):
    """Catches scheduler steps counted as epochs * floor(n / batch), epochs alone, or over all groups."""
    config = _config(batch_size=batch_size, max_epochs=max_epochs, val_fraction=val_fraction, gridsize=gridsize,
                     n_groups=n_groups)
    steps = max_epochs * _batches_per_epoch(config, n_groups)
    assume(steps >= 10)  # below ~10 steps the 30 % point falls between steps: no clean peak to speak of
    with monkeypatch.context() as patch:
        rates, built = _observed_run(config, tiny, patch)
    assert len(rates) == steps and built == [steps]
    assert max(rates) <= 0.01 * (1 + 1e-9) and max(rates) > 0.9 * 0.01
    assert 0.15 <= (int(np.argmax(rates)) + 1) / steps <= 0.45
    assert rates[-1] < 1e-3 * 0.01


def test_the_constant_schedule_keeps_the_learning_rate(tiny, monkeypatch):
    """Catches a scheduler that runs (anneals) under the default constant schedule."""
    rates, built = _observed_run(_config(lr_schedule="constant", learning_rate=0.004), tiny, monkeypatch)
    assert built == [] and len(rates) == 20 and set(rates) == {0.004}


def test_onecycle_anneals_once_over_the_whole_rest_of_the_run(tiny, monkeypatch):
    """Catches an anneal that drops early (three phases: back to the start rate by 60 %, then to ~0) or that
    waits: one cycle anneals once, from the peak (30 %) to ~0 at the last step, smoothly over all of the 70 %.

    So just after the peak the rate is still near it, halfway through the anneal it is about half the peak
    (a cosine or a linear anneal alike), and three quarters in it is well on its way down."""
    config = _config(max_epochs=6)  # 30 steps: peak at step 9 (index 8), anneal over indices 8..29
    rates, _ = _observed_run(config, tiny, monkeypatch)
    peak, last = int(np.argmax(rates)), len(rates) - 1
    assert (len(rates), peak) == (30, 8)
    fraction = lambda t: rates[peak + round(t * (last - peak))] / rates[peak]  # t: how far into the anneal
    assert fraction(0.1) > 0.9
    assert 0.4 < fraction(0.5) < 0.6
    assert 0.02 < fraction(0.75) < 0.3


def test_a_warm_started_grouped_run_follows_the_same_schedule(tiny, monkeypatch, tmp_path):
    """Catches onecycle skipped (a constant rate) for a run started from --init-model, quality_refine's case:
    a gridsize-2 run from a gridsize-1 model warms up, peaks at the learning rate at 30 % and anneals to ~0."""
    from ptychoreg.core.training import save_training

    start = _config(lr_schedule="constant", max_epochs=1)
    save_training(tmp_path, train_model(start, tiny, log=lambda _: None), start, tiny)
    config = _config(gridsize=2, n_groups=30)
    rates: list[float] = []
    handle = register_optimizer_step_pre_hook(
        lambda optimiser, args, kwargs: rates.append(optimiser.param_groups[0]["lr"]))
    try:
        train_model(config, tiny, log=lambda _: None, init_model=tmp_path / "model.pt")
    finally:
        handle.remove()
    steps = 4 * _batches_per_epoch(config, 30)
    assert len(rates) == steps == 20
    assert rates[0] < 0.1 * 0.01 and max(rates) == pytest.approx(0.01, rel=1e-9) and rates[-1] < 1e-3 * 0.01
    assert int(np.argmax(rates)) == round(0.3 * steps) - 1
