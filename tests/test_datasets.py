"""neuro.datasets: lookup order, verification of every source, and downloads from a local server.

Real MNIST comes from $NEURO_DATA (CI: ../shared/datasets); tests needing it skip without it.
Downloads only ever talk to an http.server on 127.0.0.1, and the cache is always a tmp dir.
"""

import functools
import gzip
import http.server
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

import neuro
from neuro import datasets
from neuro.errors import NeuroError

TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
DEFAULT_CACHE_DIR = datasets.CACHE_DIR  # read before any test's fixture redirects it


@pytest.fixture(scope="session")
def mnist_dir():
    """The folder holding the real MNIST .gz files (from $NEURO_DATA), or skip."""
    env = os.environ.get("NEURO_DATA")
    if not env:
        pytest.skip("NEURO_DATA is unset; point it at a folder holding mnist/*.gz (CI: ../shared/datasets)")
    folder = Path(env) / "mnist"
    missing = [f for f in datasets.SHA256 if not (folder / f"{f}.gz").is_file()]
    if missing:
        pytest.skip(f"NEURO_DATA={env} lacks mnist/{missing[0]}.gz")
    return folder


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Start each test with no NEURO_DATA, a tmp cache, no mirrors and no proxy (only 127.0.0.1)."""
    monkeypatch.delenv("NEURO_DATA", raising=False)
    monkeypatch.setattr(datasets, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(datasets, "MIRRORS", [])
    monkeypatch.setattr(datasets, "TIMEOUT_S", 5)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def copy_test_split(src: Path, dest: Path, raw: bool = False) -> Path:
    """Copy the test-split files into ``dest`` (decompressed if ``raw``); return ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in TEST_FILES:
        if raw:
            (dest / f).write_bytes(gzip.decompress((src / f"{f}.gz").read_bytes()))
        else:
            shutil.copy(src / f"{f}.gz", dest / f"{f}.gz")
    return dest


def files_under(folder: Path) -> list[Path]:
    """Every file below ``folder`` (hidden temp files included)."""
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture
def serve():
    """Start HTTP servers on 127.0.0.1: ``serve(directory, handler=...)`` returns the base URL."""
    servers = []

    def start(directory, handler=http.server.SimpleHTTPRequestHandler):
        quiet = type("Quiet", (handler,), {"log_message": lambda *args: None})
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(quiet, directory=str(directory)))
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class HalfHandler(http.server.SimpleHTTPRequestHandler):
    """Announces the full length, sends half the bytes, then hangs up (an interrupted download)."""

    def do_GET(self):
        data = Path(self.translate_path(self.path)).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True


# --- real data ---------------------------------------------------------------------------------

def test_test_split_shapes_dtypes_range_and_label_counts(mnist_dir, monkeypatch):
    monkeypatch.setenv("NEURO_DATA", str(mnist_dir.parent))
    images, labels = datasets.load("mnist", "test", download=False)
    assert images.shape == (10000, 1, 28, 28) and images.dtype == np.float32
    assert labels.shape == (10000,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    assert np.bincount(labels).tolist() == TEST_LABEL_COUNTS


def test_train_split(mnist_dir, monkeypatch):
    monkeypatch.setenv("NEURO_DATA", str(mnist_dir.parent))
    images, labels = datasets.load(split="train", download=False)
    assert images.shape == (60000, 1, 28, 28)
    assert np.bincount(labels).tolist() == TRAIN_LABEL_COUNTS


def test_results_are_cached_and_read_only(mnist_dir, monkeypatch):
    monkeypatch.setenv("NEURO_DATA", str(mnist_dir.parent))
    images, labels = datasets.load(download=False)
    hits = datasets._decode_file.cache_info().hits
    again, _ = datasets.load(download=False)
    assert datasets._decode_file.cache_info().hits == hits + 2
    assert np.shares_memory(images, again)
    with pytest.raises(ValueError):
        images[0, 0, 0, 0] = 0.5
    with pytest.raises(ValueError):
        labels.flags.writeable = True
    assert images.copy().flags.writeable


def test_raw_files_directly_in_root(mnist_dir, tmp_path):
    root = copy_test_split(mnist_dir, tmp_path / "raw", raw=True)
    images, labels = datasets.load(root=root, download=False)
    assert images.shape == (10000, 1, 28, 28)
    assert np.bincount(labels).tolist() == TEST_LABEL_COUNTS


def test_root_wins_over_neuro_data(mnist_dir, tmp_path, monkeypatch):
    bad = tmp_path / "bad" / "mnist"
    bad.mkdir(parents=True)
    for f in TEST_FILES:
        (bad / f).write_bytes(b"junk")
    monkeypatch.setenv("NEURO_DATA", str(bad.parent))
    root = copy_test_split(mnist_dir, tmp_path / "good" / "mnist").parent
    assert datasets.load(root=root, download=False)[0].shape == (10000, 1, 28, 28)


def test_cache_dir_used_when_nothing_else(mnist_dir, monkeypatch):
    copy_test_split(mnist_dir, datasets.CACHE_DIR / "mnist")
    assert datasets.load(download=False)[1].shape == (10000,)


def test_one_flipped_byte_is_a_checksum_error(mnist_dir, tmp_path):
    root = copy_test_split(mnist_dir, tmp_path / "flip", raw=True)
    path = root / TEST_FILES[0]
    data = bytearray(path.read_bytes())
    data[5000] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(NeuroError, match=r"t10k-images-idx3-ubyte: sha256 .*delete it") as err:
        datasets.load(root=root, download=False)
    assert "\n" not in str(err.value)


def test_truncated_gzip_is_an_error(mnist_dir, tmp_path):
    root = copy_test_split(mnist_dir, tmp_path / "trunc")
    path = root / f"{TEST_FILES[0]}.gz"
    path.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(NeuroError, match=r"t10k-images-idx3-ubyte\.gz: corrupt or truncated gzip"):
        datasets.load(root=root, download=False)


def test_truncated_raw_file_is_an_error(mnist_dir, tmp_path):
    root = copy_test_split(mnist_dir, tmp_path / "trunc", raw=True)
    path = root / TEST_FILES[1]
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(NeuroError, match=r"t10k-labels-idx1-ubyte: IDX header declares 10000 = 10008 bytes"):
        datasets.load(root=root, download=False)


# --- no real data needed -----------------------------------------------------------------------

def test_wrong_magic_is_an_error(tmp_path):
    for f in TEST_FILES:
        (tmp_path / f).write_bytes(b"\x1f\x8b\x08\x00 not an idx file")
    with pytest.raises(NeuroError, match="not an unsigned-byte IDX file"):
        datasets.load(root=tmp_path, download=False)


def test_unknown_name_and_split():
    with pytest.raises(NeuroError, match="unknown data set 'cifar'"):
        datasets.load("cifar")
    with pytest.raises(NeuroError, match="unknown split 'val'.*train, test"):
        datasets.load(split="val")


def test_missing_root_directory(tmp_path):
    with pytest.raises(NeuroError, match="root directory .*nope does not exist"):
        datasets.load(root=tmp_path / "nope")


def test_missing_files_without_download(tmp_path, monkeypatch):
    with pytest.raises(NeuroError, match="t10k-images-idx3-ubyte.*not found.*set NEURO_DATA"):
        datasets.load(root=tmp_path, download=False)


def test_default_cache_dir_is_repo_datasets_folder():
    assert DEFAULT_CACHE_DIR == Path(neuro.__file__).resolve().parents[1] / "datasets"


# --- downloads from 127.0.0.1 ------------------------------------------------------------------

def test_download_into_cache_then_offline_reuse(mnist_dir, tmp_path, monkeypatch, serve):
    monkeypatch.setattr(datasets, "MIRRORS", [serve(copy_test_split(mnist_dir, tmp_path / "www"))])
    images, labels = datasets.load()
    assert images.shape == (10000, 1, 28, 28)
    assert np.bincount(labels).tolist() == TEST_LABEL_COUNTS
    cached = datasets.CACHE_DIR / "mnist"
    assert files_under(datasets.CACHE_DIR) == sorted(cached / f"{f}.gz" for f in TEST_FILES)
    monkeypatch.setattr(datasets, "MIRRORS", [])
    assert np.array_equal(datasets.load(download=False)[1], labels)


def test_interrupted_download_leaves_nothing(mnist_dir, tmp_path, monkeypatch, serve):
    url = serve(copy_test_split(mnist_dir, tmp_path / "www"), HalfHandler)
    monkeypatch.setattr(datasets, "MIRRORS", [url])
    with pytest.raises(NeuroError, match=r"could not download t10k-images-idx3-ubyte\.gz, tried: "
                                         rf"{url}t10k-images-idx3-ubyte\.gz \(connection closed after"):
        datasets.load()
    assert files_under(datasets.CACHE_DIR) == []


def test_wrong_bytes_downloaded_leave_nothing(tmp_path, monkeypatch, serve):
    www = tmp_path / "www"
    www.mkdir()
    (www / f"{TEST_FILES[0]}.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02ab"))
    monkeypatch.setattr(datasets, "MIRRORS", [serve(www)])
    with pytest.raises(NeuroError, match=r"\(sha256 .* is not that of the MNIST file"):
        datasets.load()
    assert files_under(datasets.CACHE_DIR) == []


def test_falls_back_to_next_mirror(mnist_dir, tmp_path, monkeypatch, serve):
    empty = tmp_path / "empty"
    empty.mkdir()
    good = serve(copy_test_split(mnist_dir, tmp_path / "www"))
    monkeypatch.setattr(datasets, "MIRRORS", [serve(empty), good])
    assert datasets.load()[0].shape == (10000, 1, 28, 28)
    assert len(files_under(datasets.CACHE_DIR)) == 2


def test_all_mirrors_failing_names_each(tmp_path, monkeypatch, serve):
    empty = tmp_path / "empty"
    empty.mkdir()
    first, second = serve(empty), serve(empty)
    monkeypatch.setattr(datasets, "MIRRORS", [first, second])
    with pytest.raises(NeuroError, match=rf"tried: {first}\S+ \(HTTP Error 404.*; {second}\S+ \(HTTP Error 404") as err:
        datasets.load()
    assert "\n" not in str(err.value)
    assert files_under(datasets.CACHE_DIR) == []
