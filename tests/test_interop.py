"""Interoperability: the fixture PtychoPINN's loader accepts, PtychoPINN datasets our contract reads, and
reconstructions exported as Ptychodus product files that Ptychodus's own reader opens."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from conftest import project_settings, save_npz, synthetic_arrays
from ptychoreg.core.contract import load_npz
from ptychoreg.core.errors import PtychoError
from ptychoreg.interop.ptychodus import NOMINAL
from ptychoreg.core.ptychopinn import ptychopinn_metadata

# What PtychoPINN's RawData.from_file and MetadataManager read (ptycho/raw_data.py, ptycho/metadata.py).
PTYCHOPINN_REQUIRED = ("diff3d", "xcoords", "ycoords", "probeGuess")
PTYCHOPINN_OPTIONAL = ("xcoords_start", "ycoords_start", "objectGuess", "scan_index")


def ptychopinn_get_nphotons(archive) -> float:
    """MetadataManager.load_with_metadata + get_nphotons, as PtychoPINN runs them (default 1e9)."""
    if "_metadata" not in archive.files:
        return 1e9
    encoded = np.asarray(archive["_metadata"])
    assert encoded.shape == () and encoded.dtype.kind in "US"
    return json.loads(encoded.item()).get("physics_parameters", {}).get("nphotons", 1e9)


def test_fixture_carries_every_key_ptychopinn_reads(fixture_path):
    with np.load(fixture_path, allow_pickle=False) as archive:
        assert set(PTYCHOPINN_REQUIRED + PTYCHOPINN_OPTIONAL + ("_metadata",)) <= set(archive.files)
        diff3d, x = archive["diff3d"], archive["xcoords"]
        n = len(x)
        assert diff3d.ndim == 3 and diff3d.shape[0] == n and diff3d.shape[1] == diff3d.shape[2]
        assert diff3d.dtype == np.float32
        np.testing.assert_array_equal(diff3d, archive["diffraction"])
        for key in ("xcoords", "ycoords", "xcoords_start", "ycoords_start"):
            assert archive[key].shape == (n,) and archive[key].dtype == np.float64, key
        assert archive["probeGuess"].ndim == 2 and archive["probeGuess"].dtype == np.complex64
        assert archive["objectGuess"].ndim == 2 and archive["objectGuess"].dtype == np.complex64
        assert archive["scan_index"].shape == (n,) and archive["scan_index"].dtype == np.int64
        # PtychoPINN would otherwise assume 1e9 photons, a thousand times the canonical value.
        assert ptychopinn_get_nphotons(archive) == 1e6
        physics = json.loads(archive["_metadata"].item())["physics_parameters"]
        assert physics["N"] == diff3d.shape[1] and "gridsize" not in physics


def test_our_contract_reads_the_fixture_with_the_same_photon_count(fixture_path):
    assert load_npz(fixture_path).metadata["nphotons"] == 1e6


def _ptychopinn_dataset(tmp_path, nphotons=None, ours=None):
    arrays = synthetic_arrays(n=24)
    arrays["diff3d"] = arrays.pop("diffraction")
    arrays.pop("metadata", None)
    if ours is not None:
        arrays["metadata"] = np.array(json.dumps({"nphotons": ours}))
    if nphotons is not None:
        arrays["_metadata"] = ptychopinn_metadata(nphotons, 16, [])
    arrays["scan_index"] = np.zeros(24, dtype=np.int64)
    return save_npz(tmp_path / "pinn.npz", arrays)


def test_a_ptychopinn_dataset_gives_us_its_photon_count(tmp_path):
    data = load_npz(_ptychopinn_dataset(tmp_path, nphotons=1e9))
    assert data.metadata["nphotons"] == 1e9 and data.n == 24


def test_contradicting_photon_counts_are_refused(tmp_path):
    with pytest.raises(PtychoError, match="_metadata.*contradicts metadata nphotons 1e\\+06"):
        load_npz(_ptychopinn_dataset(tmp_path, nphotons=1e9, ours=1e6))


def test_bad_scan_index_is_refused(tmp_path, synthetic):
    path = synthetic(n=24, scan_index=np.zeros(23, dtype=np.int64))
    with pytest.raises(PtychoError, match="scan_index.*expected \\(24,\\) integers"):
        load_npz(path)


@pytest.fixture(scope="module")
def run_dir(fixture_path, tmp_path_factory):
    """A short real run on the fixture (train and infer in process)."""
    from ptychoreg.cli import infer, train

    out = tmp_path_factory.mktemp("run")
    common = ["--accelerator", "cpu", "--threads", "1", "--params", "params.yaml"]
    assert train.main(["--data", str(fixture_path), "--output-dir", str(out), "--max-epochs", "2", "--width", "4",
                       "--gridsize", "1", *common]) == 0
    assert infer.main(["--model", str(out / "model.pt"), "--data", str(fixture_path), "--output-dir", str(out),
                       "--n-groups", "40", *common]) == 0
    return out


def _ptychodus_reader():
    try:
        from ptychodus.plugins.npz_product_file import NPZProductFileIO
    except ImportError:
        if os.environ.get("PTYCHOREG_REQUIRE_EXTRAS"):
            raise  # CI installs the extra: there the test must run, never skip
        pytest.skip("Ptychodus is an optional extra: PTYCHOREG_EXTRAS=ptychodus ./tasks setup")
    return NPZProductFileIO()


def test_export_opens_in_ptychodus(run_dir, fixture_path, tmp_path):
    from ptychoreg.cli import export

    output = tmp_path / "product.npz"
    assert export.main(["--run-dir", str(run_dir), "--data", str(fixture_path), "--output", str(output),
                        "--name", "fixture run", "--pixel-size-m", "5e-9"]) == 0
    product = _ptychodus_reader().read(output)

    data = load_npz(fixture_path)
    with np.load(run_dir / "reconstruction.npz") as recon:
        obj, positions = recon["object"], recon["positions"]
    np.testing.assert_array_equal(product.object_.get_array().reshape(obj.shape), obj)
    from ptychoreg.core.model.bundle import load_bundle

    probe = load_bundle(run_dir / "model.pt").probe.numpy()
    np.testing.assert_array_equal(product.probes.get_array().reshape(probe.shape), probe)
    points = list(product.probe_positions)
    assert len(points) == 40 and [p.index for p in points] == positions.tolist()
    rows, cols = obj.shape
    np.testing.assert_allclose([p.x_m for p in points], (data.xcoords[positions] - cols / 2) * 5e-9)
    np.testing.assert_allclose([p.y_m for p in points], (data.ycoords[positions] - rows / 2) * 5e-9)
    assert product.object_.get_pixel_geometry().width_m == 5e-9 == product.probes.get_pixel_geometry().height_m
    history = json.loads((run_dir / "history.json").read_text())["epochs"]
    assert [loss.value for loss in product.losses] == [e["train_loss"] for e in history]
    assert product.metadata.name == "fixture run"
    assert product.metadata.photon_energy_eV == NOMINAL["photon_energy_eV"]
    assert "Nominal values" in product.metadata.comments and "pixel_size_m" not in product.metadata.comments
    assert product.metadata.probe_photon_count == 1e6


def test_export_refuses_a_run_folder_without_a_reconstruction(tmp_path, fixture_path):
    from ptychoreg.cli import export

    assert export.main(["--run-dir", str(tmp_path), "--data", str(fixture_path), "--output", str(tmp_path / "p.npz")]) == 2
    assert not (tmp_path / "p.npz").exists()


def test_the_generator_writes_ptychopinn_keys_from_any_source(synthetic, tmp_path):
    """A source with PtychoPINN's scan_index and its own photon count: the fixture carries both on."""
    from ptychoreg.harness.fixture import generate, select_indices

    scans = np.arange(36, dtype=np.int64) % 3
    source = synthetic(n=36, scan_index=scans, metadata=np.array(json.dumps({"nphotons": 5e5})))
    spec = project_settings("fixture", subset_size=16, min_subset=4, output=str(tmp_path / "f.npz"))
    generate(source, spec)
    with np.load(tmp_path / "f.npz", allow_pickle=False) as archive:
        np.testing.assert_array_equal(archive["scan_index"], scans[select_indices(36, 16, "stratified")])
        np.testing.assert_array_equal(archive["diff3d"], archive["diffraction"])
        assert ptychopinn_get_nphotons(archive) == 5e5
