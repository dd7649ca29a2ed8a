"""Training and inference in process: the loss falls, runs repeat bit for bit, gridsize 2 works end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ptychoreg.core.config import Config
from ptychoreg.core.contract import load_npz
from ptychoreg.core.errors import PtychoError
from ptychoreg.core.inference import reconstruct
from ptychoreg.core.model.bundle import Bundle
from ptychoreg.evaluation.quality import quality_report
from ptychoreg.core.training import configure_runtime, select_device, train_model


def _config(**train):
    base = {"max_epochs": 3, "batch_size": 8, "learning_rate": 3e-3, "seed": 5, "val_fraction": 0.0}
    base.update(train)
    gridsize = base.pop("gridsize", 1)
    return Config.model_validate({"model": {"width": 4, "gridsize": gridsize}, "train": base})


def _bundle(result, config) -> Bundle:
    return Bundle(result.model.eval(), torch.ones(1), result.norm_factor, result.scale.value, config.to_dict(), result.legacy, {})


@pytest.fixture(scope="module")
def fixture_data(fixture_path):
    return load_npz(fixture_path)


def test_a_few_epochs_lower_the_loss(fixture_data):
    result = train_model(_config(max_epochs=4), fixture_data, log=lambda _: None)
    losses = [h["train_loss"] for h in result.history]
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0], losses
    assert all(h["val_loss"] is None for h in result.history)


def test_identical_runs_are_bitwise_identical(fixture_data):
    config = _config(max_epochs=2)
    outputs = []
    for _ in range(2):
        result = train_model(config, fixture_data, log=lambda _: None)
        outputs.append(reconstruct(_bundle(result, config), fixture_data).stitched.object)
    assert outputs[0].tobytes() == outputs[1].tobytes()
    different = train_model(_config(max_epochs=2, seed=6), fixture_data, log=lambda _: None)
    assert reconstruct(_bundle(different, config), fixture_data).stitched.object.tobytes() != outputs[0].tobytes()


def test_gridsize_two_trains_and_infers_end_to_end(fixture_data):
    config = _config(max_epochs=2, gridsize=2, n_groups=32, val_fraction=0.25)
    logged = []
    result = train_model(config, fixture_data, log=logged.append)
    assert result.legacy["gridsize"] == 2 and result.legacy["n_images"] == 128
    assert result.history[-1]["val_loss"] is not None and "32 groups of 4" in logged[0]
    recon = reconstruct(_bundle(result, config), fixture_data)
    obj, mask = recon.stitched.object, recon.stitched.mask
    assert obj.shape == fixture_data.object.shape and np.isfinite(obj).all() and mask.mean() > 0.3
    quality = quality_report(obj, fixture_data.object, mask)
    assert -1 <= quality["amplitude"]["correlation"] <= 1


def test_a_gridsize_two_run_starts_from_a_gridsize_one_model(fixture_data, tmp_path):
    from ptychoreg.core.training import save_training

    first_config = _config(max_epochs=2)
    first = train_model(first_config, fixture_data, log=lambda _: None)
    save_training(tmp_path, first, first_config, fixture_data)
    # One epoch at a negligible rate: the second run's weights are the first run's, whatever its seed.
    config = _config(max_epochs=1, gridsize=2, n_groups=16, learning_rate=1e-12, seed=99)
    logged = []
    second = train_model(config, fixture_data, log=logged.append, init_model=tmp_path / "model.pt")
    assert f"starting from {tmp_path / 'model.pt'}" in logged[0]
    from ptychoreg.core.fileio import file_digest

    assert second.init_model == {"path": str(tmp_path / "model.pt"), "sha256": file_digest(tmp_path / "model.pt", "sha256")}
    for name, weights in first.model.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[name], weights, rtol=0, atol=1e-8)
    fresh = train_model(_config(max_epochs=1, gridsize=2, n_groups=16, learning_rate=1e-12, seed=99), fixture_data,
                        log=lambda _: None)
    assert not torch.equal(fresh.model.encoder[0].weight, second.model.encoder[0].weight)


def test_an_initial_model_of_another_width_is_refused(fixture_data, tmp_path):
    from ptychoreg.core.training import save_training

    config = _config(max_epochs=1)
    save_training(tmp_path, train_model(config, fixture_data, log=lambda _: None), config, fixture_data)
    wider = Config.model_validate({"model": {"width": 8}, "train": {"max_epochs": 1, "val_fraction": 0.0}})
    with pytest.raises(PtychoError, match=r"model.pt.*architecture.*differs: width 4 \(this run: 8\)$"):
        train_model(wider, fixture_data, log=lambda _: None, init_model=tmp_path / "model.pt")
    shared = Config.model_validate({"model": {"width": 4, "heads": "shared"}, "train": {"max_epochs": 1, "val_fraction": 0.0}})
    with pytest.raises(PtychoError, match=r"differs: heads 'separate' \(this run: 'shared'\)$"):
        train_model(shared, fixture_data, log=lambda _: None, init_model=tmp_path / "model.pt")


def test_inference_predicts_each_pattern_alone_or_merged_in_groups(fixture_data):
    config = _config(max_epochs=1, gridsize=2, n_groups=16)
    bundle = _bundle(train_model(config, fixture_data, log=lambda _: None), config)
    alone = reconstruct(bundle, fixture_data, gridsize=1).stitched.object
    merged = reconstruct(bundle, fixture_data).stitched.object  # None: the gridsize the model trained with
    assert merged.tobytes() == reconstruct(bundle, fixture_data, gridsize=2).stitched.object.tobytes()
    assert alone.shape == merged.shape and np.abs(alone - merged).max() > 1e-4


def test_inference_on_a_subset_of_positions(fixture_data):
    config = _config(max_epochs=1)
    result = train_model(config, fixture_data, log=lambda _: None)
    recon = reconstruct(_bundle(result, config), fixture_data, n_groups=10)
    np.testing.assert_array_equal(recon.positions, np.arange(10))


def test_runtime_is_deterministic_and_threads_pinned():
    configure_runtime(1, 1, torch.device("cpu"))
    assert torch.are_deterministic_algorithms_enabled() and torch.get_num_threads() == 1
    assert select_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(PtychoError, match="no CUDA device"):
            select_device("cuda")
        assert select_device("auto").type == "cpu"


def test_float64_never_reaches_the_model(fixture_data, monkeypatch):
    seen = []
    from ptychoreg.core.model import network

    original = network.PtychoNet.forward
    monkeypatch.setattr(network.PtychoNet, "forward", lambda self, x: seen.append(x.dtype) or original(self, x))
    train_model(_config(max_epochs=1), fixture_data, log=lambda _: None)
    assert seen and set(seen) == {torch.float32}
