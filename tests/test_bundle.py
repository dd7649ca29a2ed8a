"""The model bundle: round trip, and refusals for truncated, foreign and malicious files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from ptychoreg.core.errors import PtychoError
from ptychoreg.core.model.bundle import load_bundle, save_bundle
from ptychoreg.core.model.network import PtychoNet


def _save(path, **model_kwargs):
    torch.manual_seed(0)
    model = PtychoNet(size=16, width=2, **model_kwargs)
    probe = np.ones((16, 16), dtype=np.complex128)
    save_bundle(path, model, probe, config={"train": {"neighbours": 4}}, legacy={"N": 16}, norm_factor=1.5,
                intensity_scale=8.0)
    return model


def test_round_trip(tmp_path):
    model = _save(tmp_path / "m.pt", gridsize=2)
    bundle = load_bundle(tmp_path / "m.pt")
    assert bundle.model.gridsize == 2 and bundle.norm_factor == 1.5 and bundle.intensity_scale == 8.0
    assert bundle.probe.dtype == torch.complex64 and bundle.legacy == {"N": 16}
    assert set(bundle.meta["versions"]) >= {"torch", "numpy", "python", "ptychoreg"}
    x = torch.rand(1, 4, 16, 16)
    assert torch.equal(bundle.model(x), model.eval()(x))


@pytest.mark.parametrize("layout", [{"heads": "shared"}, {"upsampling": "subpixel"}])
def test_round_trip_keeps_the_layout(tmp_path, layout):
    model = _save(tmp_path / "m.pt", **layout)
    bundle = load_bundle(tmp_path / "m.pt")
    assert bundle.model.architecture() == model.architecture()
    x = torch.rand(1, 1, 16, 16)
    assert torch.equal(bundle.model(x), model.eval()(x))


def test_a_bundle_from_before_the_layout_options_loads_as_the_default_layout(tmp_path):
    model = _save(tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    del payload["architecture"]["heads"], payload["architecture"]["upsampling"]
    torch.save(payload, tmp_path / "m.pt")
    bundle = load_bundle(tmp_path / "m.pt")
    assert bundle.model.architecture() == model.architecture()
    assert (bundle.model.heads, bundle.model.upsampling) == ("separate", "nearest")


def test_a_layout_the_weights_do_not_fit_is_refused(tmp_path):
    _save(tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["architecture"]["heads"] = "shared"  # two decoders' weights under a shared-decoder description
    torch.save(payload, tmp_path / "m.pt")
    with pytest.raises(PtychoError, match=r"architecture mismatch: \d+ missing, \d+ unexpected .*heads=shared"):
        load_bundle(tmp_path / "m.pt")


def test_same_model_same_bytes(tmp_path):
    _save(tmp_path / "a.pt")
    _save(tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_truncated_bundle(tmp_path):
    _save(tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "m.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(PtychoError, match="not a readable model bundle"):
        load_bundle(tmp_path / "m.pt")


def test_other_architecture(tmp_path):
    _save(tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["architecture"]["width"] = 4  # weights of width 2 under a width-4 description
    torch.save(payload, tmp_path / "m.pt")
    with pytest.raises(PtychoError, match="architecture mismatch: 0 missing, 0 unexpected and .* reshaped"):
        load_bundle(tmp_path / "m.pt")


def test_not_a_bundle(tmp_path):
    torch.save({"weights": torch.ones(3)}, tmp_path / "m.pt")
    with pytest.raises(PtychoError, match="not a ptychoreg-model-bundle"):
        load_bundle(tmp_path / "m.pt")


class _Payload:
    """Unpickling this would run code: it creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_payload_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    _save(tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["config"] = _Payload(marker)
    torch.save(payload, tmp_path / "evil.pt")
    assert not marker.exists()
    with pytest.raises(PtychoError, match="refused: the file holds pickled objects"):
        load_bundle(tmp_path / "evil.pt")
    assert not marker.exists()
    # A bare pickle file with the same payload is refused too.
    (tmp_path / "raw.pt").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(PtychoError):
        load_bundle(tmp_path / "raw.pt")
    assert not marker.exists()


def test_missing_and_empty(tmp_path):
    with pytest.raises(PtychoError, match="not found"):
        load_bundle(tmp_path / "none.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(PtychoError, match="empty file"):
        load_bundle(tmp_path / "empty.pt")
