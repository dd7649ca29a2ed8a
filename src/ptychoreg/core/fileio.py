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
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from ptychoreg.core.errors import PtychoError

# A fixed timestamp inside npz archives: zip entries otherwise carry the wall-clock time of writing,
# and the same arrays would give different bytes on every run.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _umask() -> int:
    """This process's umask, read without changing it (os.umask can only read by setting, which would
    race with other threads' file creation)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022  # no /proc: the usual default


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
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
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
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; outputs get the usual permissions
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
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


def refuse_overlap(outputs: list, inputs: list) -> None:
    """Refuse an output path that is one of the command's inputs: writing it would destroy that input."""
    resolved = {Path(i).resolve(): str(i) for i in inputs if i is not None}
    for out in (o for o in outputs if o is not None):
        name = resolved.get(Path(out).resolve())
        if name is not None:
            raise PtychoError(out, f"is the input {name}: writing it would destroy that input; choose another output")


class StagedOutputs:
    """A command's outputs, staged: `folder` is a temporary folder beside the output folder, `file(path)` a
    temporary path beside each other file the command was asked to write."""

    def __init__(self, target: Path, staging: Path, writes: tuple[str, ...]) -> None:
        self.target, self.folder, self.writes = target, staging, writes
        self.files: dict[Path, Path] = {}

    def file(self, path: str | os.PathLike) -> Path:
        target = Path(path)
        if target.is_dir():
            raise PtychoError(target, "is a directory, expected a file path")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
        except OSError as exc:
            raise PtychoError(target, f"cannot be written ({exc.strerror or exc})") from None
        os.close(fd)
        self.files[target] = Path(tmp)
        return Path(tmp)

    def commit(self) -> None:
        """Move everything into place: a new folder by one rename; into an existing folder, each new file by
        its own rename, and those of `writes` this run did not write (quality.json without a true object)
        removed, so the folder never mixes two runs' outputs; its other files stay. Then the files beside it."""
        if not self.target.exists():
            os.replace(self.folder, self.target)
        else:
            written = sorted(self.folder.iterdir())
            for entry in written:
                os.replace(entry, self.target / entry.name)
            for name in set(self.writes) - {entry.name for entry in written}:
                with contextlib.suppress(FileNotFoundError):
                    (self.target / name).unlink()
            self.folder.rmdir()
        for target, tmp in self.files.items():
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, target)

    def discard(self, keep: bool = False) -> None:
        """Remove what was staged; with `keep`, the staged folder becomes `<folder>.failed` instead."""
        if keep:
            failed = self.target.with_name(self.target.name + ".failed")
            shutil.rmtree(failed, ignore_errors=True)
            os.replace(self.folder, failed)
        shutil.rmtree(self.folder, ignore_errors=True)
        for tmp in self.files.values():
            with contextlib.suppress(OSError):
                tmp.unlink()


@contextlib.contextmanager
def staged_outputs(folder: str | os.PathLike, writes: tuple[str, ...], inputs: list = (),
                   files: list = (), keep_failed: bool = False) -> Iterator[StagedOutputs]:
    """Write a command's outputs (the files `writes` in `folder`, and `files` beside it) under temporary
    names; move them into place only when the block succeeds, so any failure leaves the previous folder and
    files byte-identical (with `keep_failed`, what the failed block wrote is kept as `<folder>.failed` for a
    look). An output that is one of `inputs` is refused first."""
    target = Path(folder)
    refuse_overlap([target, *(target / name for name in writes), *files], list(inputs))
    if target.exists() and not target.is_dir():
        raise PtychoError(target, "is a file, expected an output folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(target.parent, target.name)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise PtychoError(target.parent, f"cannot write output folder ({exc.strerror or exc})") from None
    os.chmod(staging, 0o777 & ~_umask())
    staged = StagedOutputs(target, staging, writes)
    try:
        yield staged
        staged.commit()
    except BaseException:
        staged.discard(keep=keep_failed)
        raise
