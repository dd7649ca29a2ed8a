"""Atomic, deterministic file writing and hashing.

Every output the project writes goes through here: it is written under a temporary name in the
destination folder and renamed into place, so a failed or killed run never leaves a partial file and
never damages an existing good one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from ptychoreg.core.errors import PtychoError
from ptychoreg.core.steps import step

# A fixed timestamp inside npz archives: zip entries otherwise carry the wall-clock time of writing,
# and the same arrays would give different bytes on every run.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_UMASK = os.umask(0)
os.umask(_UMASK)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes: sha256 for our records, md5 to compare with what dvc.lock records."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


def sha256_array(array: np.ndarray) -> str:
    """Hash of an array's dtype, shape and bytes (C order)."""
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temps(folder: Path, name: str) -> None:
    """Delete temporaries of `name` left by writers that were killed (their pid is in the name)."""
    for tmp in folder.glob(f".{name}.*.tmp"):
        pid = tmp.name[len(name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise PtychoError(target, "is a directory, expected a file path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(folder, target.name)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise PtychoError(folder, f"cannot write output folder ({exc.strerror or exc})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs get the usual permissions
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        step(f"before-rename {target.name}")  # the worst moment to die: the new file complete, not in place
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def path_from(folder: str | os.PathLike, path: str | os.PathLike) -> str:
    """`path` as seen from `folder` (an output folder): what outputs record of the files they came from, so
    a run staged in a scratch folder and renamed into place records the same bytes as one written there."""
    return os.path.relpath(path, folder)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def to_json(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, to_json(obj))


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An uncompressed .npz whose bytes depend only on the arrays (names sorted, fixed timestamps).

    Uncompressed on purpose: deflate output can differ between zlib builds, and the fixture's hash must
    be the same on every machine.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name in sorted(arrays):
            array = np.asarray(arrays[name])
            if array.dtype.hasobject:
                raise PtychoError(None, "object arrays are never written (they would need pickle)", key=name)
            member = io.BytesIO()
            np.lib.format.write_array(member, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def write_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    write_bytes(path, npz_bytes(arrays))
