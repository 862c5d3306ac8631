"""MNIST (LeCun, Cortes & Burges) with a verified download cache.

The four original IDX ``.gz`` files are kept in one folder (see :func:`default_root`). A cached file
is used only if its SHA-256 matches; otherwise it is fetched again from the first mirror that works.
Downloads go to a temporary file in the same folder, are verified, and only then renamed into place,
so an interrupted or corrupt download never leaves a file that looks valid.

>>> from vmonf_mini.mnist import CHECKSUMS, default_root, load_mnist
>>> default_root().name, len(CHECKSUMS)
('mnist', 4)
>>> x, y = load_mnist(digits=range(5), split="test")  # doctest: +SKIP
>>> x.shape, x.dtype, y.shape, y.dtype  # doctest: +SKIP
(torch.Size([5139, 784]), torch.float32, torch.Size([5139]), torch.int64)
"""

from __future__ import annotations

import gzip
import hashlib
import operator
import os
import tempfile
import urllib.request
import warnings
from pathlib import Path
from typing import Iterable, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "MNISTUnavailable",
    "MNISTCorrupt",
    "CHECKSUMS",
    "DEFAULT_MIRRORS",
    "default_root",
    "fetch",
    "read_idx",
    "load_mnist",
]

#: SHA-256 of the four original MNIST files; a file whose digest differs is never used.
#:
#: :meta hide-value:
CHECKSUMS = {
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
}
#: Tried in order until one serves a file with the right checksum.
#:
#: :meta hide-value:
DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_PREFIX = {"train": "train", "test": "t10k"}
_CHUNK = 1 << 16
PathLike = Union[str, os.PathLike]


class MNISTUnavailable(RuntimeError):
    """No valid copy of the MNIST files could be had; the message names the path, the cause and the fix.

    Every failure of :func:`load_mnist` (and :func:`vmonf_mini.data.mnist`) other than a bad
    argument is this class or its subclass :class:`MNISTCorrupt`, so ``except MNISTUnavailable``
    is a complete fallback.
    """


class MNISTCorrupt(MNISTUnavailable, ValueError):
    """A file that passed its checksum (e.g. a custom ``checksums``) is not valid MNIST data."""


def default_root() -> Path:
    """``$VMONF_DATA_DIR/mnist``; else ``<repo>/data/mnist`` in a checkout; else ``~/.cache/vmonf_mini/mnist``."""
    env = os.environ.get("VMONF_DATA_DIR")
    if env:
        return Path(env).expanduser() / "mnist"
    repo = Path(__file__).resolve().parent.parent
    if (repo / "data" / "README.md").is_file():
        return repo / "data" / "mnist"
    return Path.home() / ".cache" / "vmonf_mini" / "mnist"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, dest: Path, expected: str, timeout: float) -> None:
    """Stream ``url`` into a temporary file next to ``dest``; verify, then rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.part-", dir=dest.parent)
    try:
        digest = hashlib.sha256()
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(url, timeout=timeout) as response,
        ):
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != expected:
            raise ValueError(
                f"SHA-256 mismatch: got {digest.hexdigest()}, expected {expected}"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:  # also KeyboardInterrupt: never leave a partial file behind
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _as_mirrors(mirrors: Union[str, Iterable[str]]) -> Tuple[str, ...]:
    return (mirrors,) if isinstance(mirrors, str) else tuple(mirrors)


def fetch(
    filename: str,
    root: PathLike,
    mirrors: Iterable[str] = DEFAULT_MIRRORS,
    checksums: Optional[Mapping[str, str]] = None,
    timeout: float = 30.0,
    download: bool = True,
) -> Path:
    """Return ``root/filename`` after checking its SHA-256, downloading it first if needed."""
    checksums = CHECKSUMS if checksums is None else checksums
    if filename not in checksums:
        raise ValueError(
            f"filename must be one of {sorted(checksums)}, got {filename!r}"
        )
    expected, root = checksums[filename], Path(root).expanduser()
    path = root / filename
    errors: List[str] = []
    if path.is_file():
        try:
            actual = _sha256(path)
        except OSError as err:
            actual = f"unreadable: {type(err).__name__}: {err}"
        if actual == expected:
            return path
        problem = f"cached {path} is corrupt or truncated (SHA-256 {actual}, expected {expected})"
        errors.append(problem)
        warnings.warn(
            problem
            + (
                "; fetching it again"
                if download
                else "; download=False, so it is not replaced"
            ),
            stacklevel=2,
        )
    fix = ""
    if not download:
        errors.append("download=False, so no mirror was tried")
    else:
        mirrors = _as_mirrors(mirrors)
        if not mirrors:
            errors.append("no mirrors were given")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            errors.append(
                f"the folder {root} cannot be created: {type(err).__name__}: {err}"
            )
            fix, mirrors = (
                " Or choose a folder that can be created: pass root= or set VMONF_DATA_DIR.",
                (),
            )
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + filename
            try:
                _download(url, path, expected, timeout)
                return path
            except (
                Exception
            ) as err:  # each failure is reported, then the next mirror is tried
                errors.append(f"{url}: {type(err).__name__}: {err}".replace("\n", " "))
    raise MNISTUnavailable(
        f"MNIST file {filename} is not available in {root}:\n"
        + "".join(f"  - {line}\n" for line in errors)
        + f"To fix: copy the four MNIST .gz files into {root} (see data/README.md) or connect to the internet."
        + fix
    )


def read_idx(path: PathLike, magic: int) -> np.ndarray:
    """Read a gzipped IDX file of unsigned bytes whose magic number must be ``magic`` (2051 images, 2049 labels)."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"{path} is not a valid gzip file: {err}") from None
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found != magic:
        raise ValueError(
            f"{path} is not an IDX file with magic number {magic} (found {found})"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    dims = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    if len(data) != header + int(np.prod(dims)):
        raise ValueError(
            f"{path} holds {len(data) - header} data bytes, its header {dims} needs {int(np.prod(dims))}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _check_digits(digits: Union[int, Iterable[int]]) -> List[int]:
    try:
        given = [digits] if isinstance(digits, (int, np.integer)) else list(digits)
        chosen = sorted({operator.index(d) for d in given})
    except TypeError:
        raise ValueError(f"digits must be integers in 0..9, got {digits!r}") from None
    if not chosen or chosen[0] < 0 or chosen[-1] > 9:
        raise ValueError(f"digits must be a non-empty selection of 0..9, got {given!r}")
    return chosen


def load_mnist(
    digits: Union[int, Iterable[int]] = range(5),
    split: str = "train",
    root: Optional[PathLike] = None,
    download: bool = True,
    mirrors: Optional[Iterable[str]] = None,
    timeout: float = 30.0,
    checksums: Optional[Mapping[str, str]] = None,
) -> Tuple[Tensor, Tensor]:
    """MNIST images of ``digits`` from ``split`` ("train" or "test"), in file order.

    Returns ``x`` float32 ``(N, 784)`` with pixels / 255 in [0, 1] and ``y`` int64 ``(N,)``.

    Raises:
        ValueError: a bad ``digits`` or ``split`` (checked before touching the disk).
        MNISTUnavailable: no valid copy could be had (missing, corrupt or unreadable cache, a
            cache folder that cannot be created, no mirror reachable); :class:`MNISTCorrupt`
            (also a ``ValueError``) when files that passed their checksums are not MNIST data.
    """
    if split not in _PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    chosen = _check_digits(digits)
    root = default_root() if root is None else Path(root)
    mirrors = DEFAULT_MIRRORS if mirrors is None else _as_mirrors(mirrors)

    def get(kind: str, magic: int) -> Tuple[Path, np.ndarray]:
        path = fetch(
            f"{_PREFIX[split]}-{kind}.gz", root, mirrors, checksums, timeout, download
        )
        return path, read_idx(path, magic)

    try:
        image_path, images = get("images-idx3-ubyte", 2051)
        label_path, labels = get("labels-idx1-ubyte", 2049)
        if images.shape[1:] != (28, 28):
            raise ValueError(
                f"{image_path} holds images of shape {images.shape[1:]}, expected (28, 28)"
            )
        if len(images) != len(labels):
            raise ValueError(
                f"{image_path} has {len(images)} images but {label_path} has {len(labels)} labels"
            )
        if labels.size and labels.max() > 9:
            raise ValueError(f"{label_path} holds labels above 9")
    except ValueError as err:  # the files passed their checksums but are not MNIST data
        raise MNISTCorrupt(
            f"{err}\nTo fix: replace the files in {root} by the original MNIST files "
            "(see data/README.md), or use the default checksums."
        ) from None
    keep = np.isin(labels, chosen)
    x = torch.from_numpy(images[keep].reshape(-1, 784).astype(np.float32) / 255.0)
    return x, torch.from_numpy(labels[keep].astype(np.int64))
