"""The MNIST loader and its verified download cache, on tiny fake IDX files served by fake mirrors.

No test touches the network: mirrors are file:// folders, a local http.server on 127.0.0.1,
or a closed local port. The real files are used only if a local copy is present.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import shutil
import struct
import threading
import urllib.request
from pathlib import Path
from typing import Dict, Iterator

import numpy as np
import pytest
import torch

import vmonf_mini
from vmonf_mini import mnist as mn
from vmonf_mini.mnist import MNISTUnavailable, default_root, fetch, load_mnist, read_idx

REAL_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
CLOSED_PORT = "http://127.0.0.1:9/"  # the discard port: nothing listens there
TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"


def idx_gz(magic: int, array: np.ndarray) -> bytes:
    header = struct.pack(">I", magic) + b"".join(
        struct.pack(">I", d) for d in array.shape
    )
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeMirror:
    """A folder holding the four MNIST file names with tiny contents, and their checksums."""

    def __init__(self, folder: Path) -> None:
        rng = np.random.default_rng(0)
        self.folder = folder
        folder.mkdir()
        self.arrays: Dict[str, np.ndarray] = {}
        self.checksums: Dict[str, str] = {}
        for prefix, n in (("train", 20), ("t10k", 10)):
            images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
            images[0, 0, 0], images[0, 0, 1] = 0, 255
            labels = (np.arange(n) * 7 % 10).astype(
                np.uint8
            )  # every digit, in a scrambled order
            self.add(f"{prefix}-images-idx3-ubyte.gz", idx_gz(2051, images), images)
            self.add(f"{prefix}-labels-idx1-ubyte.gz", idx_gz(2049, labels), labels)

    def add(self, name: str, data: bytes, array: np.ndarray) -> None:
        (self.folder / name).write_bytes(data)
        self.arrays[name], self.checksums[name] = array, sha256(data)

    @property
    def url(self) -> str:
        return self.folder.as_uri() + "/"

    def bytes(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()


@pytest.fixture
def mirror(tmp_path: Path) -> FakeMirror:
    return FakeMirror(tmp_path / "mirror")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the loader tried to download although the cache is valid")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def http_mirror(mirror: FakeMirror) -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(mirror.folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def expected(mirror: FakeMirror, prefix: str, digits: list) -> tuple:
    images = mirror.arrays[f"{prefix}-images-idx3-ubyte.gz"]
    labels = mirror.arrays[f"{prefix}-labels-idx1-ubyte.gz"]
    keep = np.isin(labels, digits)
    return images[keep].reshape(-1, 784) / 255.0, labels[keep]


def test_download_then_cache(
    mirror: FakeMirror, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = load_mnist(
        range(5), "train", root, mirrors=[mirror.url], checksums=mirror.checksums
    )
    want_x, want_y = expected(mirror, "train", [0, 1, 2, 3, 4])
    assert x.shape == (10, 784) and x.dtype == torch.float32
    assert y.shape == (10,) and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    np.testing.assert_allclose(x.numpy(), want_x, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(
        y.numpy(), want_y
    )  # file order, only the chosen digits
    assert sorted(p.name for p in root.iterdir()) == [TRAIN_IMAGES, TRAIN_LABELS]

    # second call: the mirror is gone and the network refused, the verified cache is enough
    shutil.rmtree(mirror.folder)
    monkeypatch.setattr(
        urllib.request, "urlopen", lambda *a, **k: pytest.fail("downloaded again")
    )
    x2, y2 = load_mnist(
        range(5), "train", root, mirrors=[CLOSED_PORT], checksums=mirror.checksums
    )
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, y3 = load_mnist([3], "train", root, download=False, checksums=mirror.checksums)
    assert (y3 == 3).all() and len(y3) == int((mirror.arrays[TRAIN_LABELS] == 3).sum())


def test_test_split_and_data_forwarder(
    mirror: FakeMirror, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for (
        name,
        checksum,
    ) in mirror.checksums.items():  # the public loader uses the module's checksums
        monkeypatch.setitem(mn.CHECKSUMS, name, checksum)
    x, y = vmonf_mini.data.mnist(
        digits=[7, 9], split="test", root=root, mirrors=(mirror.url,), timeout=5
    )
    want_x, want_y = expected(mirror, "t10k", [7, 9])
    np.testing.assert_allclose(x.numpy(), want_x, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(y.numpy(), want_y)
    assert sorted(p.name for p in root.iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]


def test_fallback_to_next_mirror(
    mirror: FakeMirror, root: Path, tmp_path: Path
) -> None:
    missing = (tmp_path / "no-such-folder").as_uri() + "/"
    x, y = load_mnist(
        range(10),
        "train",
        root,
        mirrors=[missing, CLOSED_PORT, mirror.url],
        checksums=mirror.checksums,
        timeout=5,
    )
    assert x.shape == (20, 784) and y.tolist() == mirror.arrays[TRAIN_LABELS].tolist()


def test_fallback_to_http_mirror(
    mirror: FakeMirror, http_mirror: str, root: Path, tmp_path: Path
) -> None:
    missing = (tmp_path / "no-such-folder").as_uri() + "/"
    x, y = load_mnist(
        range(5),
        "test",
        root,
        mirrors=[missing, http_mirror],
        checksums=mirror.checksums,
        timeout=5,
    )
    want_x, want_y = expected(mirror, "t10k", [0, 1, 2, 3, 4])
    np.testing.assert_allclose(x.numpy(), want_x, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(y.numpy(), want_y)


def test_checksum_mismatch_at_mirror(mirror: FakeMirror, root: Path) -> None:
    wrong = dict(mirror.checksums, **{TRAIN_IMAGES: "0" * 64})
    with pytest.raises(MNISTUnavailable, match=TRAIN_IMAGES) as info:
        fetch(TRAIN_IMAGES, root, [mirror.url], checksums=wrong, timeout=5)
    assert "SHA-256 mismatch" in str(info.value) and mirror.checksums[
        TRAIN_IMAGES
    ] in str(info.value)
    assert list(root.iterdir()) == []  # neither the file nor a .part file


def test_bad_mirror_is_skipped(mirror: FakeMirror, root: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad-mirror"
    bad.mkdir()
    (bad / TRAIN_IMAGES).write_bytes(
        mirror.bytes(TRAIN_IMAGES)[:-100]
    )  # served truncated
    path = fetch(
        TRAIN_IMAGES, root, [bad.as_uri(), mirror.url], checksums=mirror.checksums
    )
    assert path == root / TRAIN_IMAGES and path.read_bytes() == mirror.bytes(
        TRAIN_IMAGES
    )
    assert list(root.iterdir()) == [path]


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "empty"])
def test_bad_cache_is_refetched(mirror: FakeMirror, root: Path, damage: str) -> None:
    good = mirror.bytes(TRAIN_IMAGES)
    bad = {
        "truncated": good[: len(good) // 2],
        "corrupt": good[:99] + bytes([good[99] ^ 0xFF]) + good[100:],
        "empty": b"",
    }[damage]
    root.mkdir()
    (root / TRAIN_IMAGES).write_bytes(bad)
    with pytest.warns(UserWarning, match=TRAIN_IMAGES):
        x, y = load_mnist(
            range(10), "train", root, mirrors=[mirror.url], checksums=mirror.checksums
        )
    assert (root / TRAIN_IMAGES).read_bytes() == good
    np.testing.assert_array_equal(
        x.numpy(), mirror.arrays[TRAIN_IMAGES].reshape(-1, 784) / np.float32(255)
    )
    assert sorted(p.name for p in root.iterdir()) == [TRAIN_IMAGES, TRAIN_LABELS]


def test_bad_cache_without_download(
    mirror: FakeMirror, root: Path, no_network: None
) -> None:
    root.mkdir()
    (root / TRAIN_IMAGES).write_bytes(mirror.bytes(TRAIN_IMAGES)[:50])
    with (
        pytest.warns(UserWarning, match="corrupt or truncated"),
        pytest.raises(MNISTUnavailable, match="download=False"),
    ):
        fetch(
            TRAIN_IMAGES, root, [mirror.url], checksums=mirror.checksums, download=False
        )


def test_unreachable_mirrors(mirror: FakeMirror, root: Path, tmp_path: Path) -> None:
    missing = (tmp_path / "no-such-folder").as_uri() + "/"
    with pytest.raises(MNISTUnavailable) as info:
        load_mnist(
            range(5),
            "train",
            root,
            mirrors=[CLOSED_PORT, missing],
            checksums=mirror.checksums,
            timeout=5,
        )
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert "train-" in message and str(root) in message
    assert CLOSED_PORT in message and missing in message
    lines = [line for line in message.splitlines() if line.startswith("  - ")]
    assert len(lines) == 2  # one line per mirror
    assert (
        f"copy the four MNIST .gz files into {root} (see data/README.md) or connect to the internet"
        in message
    )
    assert [p for p in root.iterdir()] == []


def test_no_download_and_no_cache(root: Path, no_network: None) -> None:
    with pytest.raises(MNISTUnavailable, match="download=False") as info:
        load_mnist(range(5), "test", root, download=False)
    assert "t10k-" in str(info.value) and "data/README.md" in str(info.value)


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_interrupted_download(
    mirror: FakeMirror, root: Path, monkeypatch: pytest.MonkeyPatch, error: type
) -> None:
    real_urlopen = urllib.request.urlopen
    seen = []

    class Interrupted:
        def __init__(self, response: object) -> None:
            self.response, self.calls = response, 0

        def __enter__(self) -> "Interrupted":
            return self

        def __exit__(self, *exc: object) -> None:
            self.response.close()

        def read(self, n: int = -1) -> bytes:
            self.calls += 1
            if self.calls == 1:
                return self.response.read(100)
            seen.extend(
                p.name for p in root.iterdir()
            )  # the partial file exists right now
            raise error("connection lost")

    monkeypatch.setattr(
        urllib.request,
        "urlopen",
        lambda url, timeout: Interrupted(real_urlopen(url, timeout=timeout)),
    )
    with pytest.raises(
        KeyboardInterrupt if error is KeyboardInterrupt else MNISTUnavailable
    ):
        fetch(TRAIN_IMAGES, root, [mirror.url], checksums=mirror.checksums)
    assert len(seen) == 1 and seen[0].startswith(f".{TRAIN_IMAGES}.part-")
    assert list(root.iterdir()) == []  # removed, not used

    monkeypatch.undo()
    assert fetch(
        TRAIN_IMAGES, root, [mirror.url], checksums=mirror.checksums
    ).read_bytes() == mirror.bytes(TRAIN_IMAGES)
    assert [p.name for p in root.iterdir()] == [TRAIN_IMAGES]


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"split": "val"}, "split"),
        ({"split": "TRAIN"}, "split"),
        ({"digits": [11]}, "digits"),
        ({"digits": [-1, 2]}, "digits"),
        ({"digits": []}, "digits"),
        ({"digits": ["a"]}, "digits"),
        ({"digits": [1.5]}, "digits"),
    ],
)
def test_bad_arguments(
    root: Path, no_network: None, kwargs: dict, argument: str
) -> None:
    with pytest.raises(ValueError, match=argument):
        load_mnist(root=root, download=False, **kwargs)
    with pytest.raises(ValueError, match=argument):
        vmonf_mini.data.mnist(root=root, download=False, **kwargs)
    assert not root.exists()  # checked before touching the disk


def test_single_digit_as_int(mirror: FakeMirror, root: Path) -> None:
    _, y = load_mnist(
        4, "train", root, mirrors=[mirror.url], checksums=mirror.checksums
    )
    assert y.tolist() == [4, 4]


def test_unknown_file(root: Path) -> None:
    with pytest.raises(ValueError, match="filename"):
        fetch("cifar-10.tar.gz", root, [], download=False)


@pytest.mark.parametrize(
    "name, data, message",
    [
        (
            TRAIN_IMAGES,
            idx_gz(2049, np.zeros((20, 28, 28))),
            "magic number 2051",
        ),  # labels magic in images file
        (TRAIN_LABELS, idx_gz(2051, np.zeros((20, 28, 28))), "magic number 2049"),
        (
            TRAIN_IMAGES,
            idx_gz(2051, np.zeros((20, 28, 28)))[:-30],
            "gzip",
        ),  # truncated gzip stream
        (
            TRAIN_IMAGES,
            gzip.compress(struct.pack(">IIII", 2051, 20, 28, 28) + bytes(100), mtime=0),
            "data bytes",
        ),
        (TRAIN_IMAGES, b"not gzip at all", "gzip"),
        (TRAIN_IMAGES, idx_gz(2051, np.zeros((20, 14, 14))), "expected \\(28, 28\\)"),
        (TRAIN_LABELS, idx_gz(2049, np.zeros(19)), "20 images but"),
        (TRAIN_LABELS, idx_gz(2049, np.full(20, 12)), "labels above 9"),
    ],
    # readable, stable test ids (pytest-xdist's workers must collect the same names)
    ids=[
        "labels-magic-in-images",
        "images-magic-in-labels",
        "truncated-gzip",
        "too-few-bytes",
        "not-gzip",
        "wrong-image-size",
        "fewer-labels",
        "label-above-9",
    ],
)
def test_malformed_idx(
    mirror: FakeMirror, root: Path, name: str, data: bytes, message: str
) -> None:
    mirror.add(name, data, np.empty(0))
    with pytest.raises(ValueError, match=message) as info:
        load_mnist(
            range(10), "train", root, mirrors=[mirror.url], checksums=mirror.checksums
        )
    assert name in str(info.value)


def test_read_idx_direct(tmp_path: Path) -> None:
    path = tmp_path / "labels.gz"
    path.write_bytes(idx_gz(2049, np.arange(10)))
    assert read_idx(path, 2049).tolist() == list(range(10))
    with pytest.raises(ValueError, match="labels.gz"):
        read_idx(path, 2051)


def test_default_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VMONF_DATA_DIR", str(tmp_path / "elsewhere"))
    assert default_root() == tmp_path / "elsewhere" / "mnist"
    monkeypatch.delenv("VMONF_DATA_DIR")
    repo = Path(vmonf_mini.__file__).resolve().parent.parent
    if (
        repo / "data" / "README.md"
    ).is_file():  # running from a checkout of the repository
        assert default_root() == repo / "data" / "mnist"
    monkeypatch.setattr(
        mn, "__file__", str(tmp_path / "site-packages" / "vmonf_mini" / "mnist.py")
    )
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / ".cache" / "vmonf_mini" / "mnist"


@pytest.mark.skipif(
    not REAL_MNIST.is_dir(), reason=f"no local copy of MNIST in {REAL_MNIST}"
)
def test_real_mnist(tmp_path: Path, no_network: None) -> None:
    for name in mn.CHECKSUMS:
        shutil.copyfile(REAL_MNIST / name, tmp_path / name)
    for split, n in (("train", 30_596), ("test", 5_139)):
        x, y = vmonf_mini.data.mnist(range(5), split, root=tmp_path, download=False)
        assert (
            x.shape == (n, 784) and x.dtype == torch.float32 and y.dtype == torch.int64
        )
        assert set(y.tolist()) == {0, 1, 2, 3, 4}
        assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert y[:5].tolist() == [
        2,
        1,
        0,
        4,
        1,
    ]  # the first test labels are 7 2 1 0 4 1 4 9 ...


@pytest.mark.parametrize("where", ["root is a file", "parent is a file"])
def test_a_cache_folder_that_cannot_be_created_raises_mnist_unavailable(
    mirror: FakeMirror, tmp_path: Path, where: str
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    root = blocker if where == "root is a file" else blocker / "mnist"
    with pytest.raises(MNISTUnavailable) as info:
        vmonf_mini.data.mnist(root=root, mirrors=[mirror.url])
    message = str(info.value)
    assert (
        str(root) in message and "cannot be created" in message
    )  # the path and the cause
    assert "VMONF_DATA_DIR" in message  # what to do
    assert blocker.read_text() == "not a folder"


def test_a_corrupt_cache_without_download_is_named_in_the_exception(
    mirror: FakeMirror, root: Path
) -> None:
    root.mkdir()
    (root / TRAIN_IMAGES).write_bytes(mirror.bytes(TRAIN_IMAGES)[:50])
    with pytest.warns(UserWarning) as warned, pytest.raises(MNISTUnavailable) as info:
        load_mnist(range(5), "train", root, download=False, checksums=mirror.checksums)
    assert f"cached {root / TRAIN_IMAGES} is corrupt or truncated" in str(info.value)
    assert all("fetching it again" not in str(w.message) for w in warned)


def test_files_that_pass_their_checksums_but_are_not_mnist_raise_mnist_unavailable(
    mirror: FakeMirror, root: Path
) -> None:
    mirror.add(TRAIN_IMAGES, b"not gzip at all", np.empty(0))
    with pytest.raises(MNISTUnavailable, match="not a valid gzip file") as info:
        load_mnist(
            range(10), "train", root, mirrors=[mirror.url], checksums=mirror.checksums
        )
    assert isinstance(info.value, mn.MNISTCorrupt) and isinstance(
        info.value, ValueError
    )
    assert str(root) in str(info.value) and "To fix" in str(info.value)
