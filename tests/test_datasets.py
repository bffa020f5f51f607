"""neuro.datasets: lookup order, verification of every source, and downloads from a local server.

Real MNIST and CIFAR-10 come from $NEURO_DATA (CI: ../shared/datasets); tests needing them skip without.
Downloads only ever talk to an http.server on 127.0.0.1, and the cache is always a tmp dir (except the
real CIFAR-10 test, which uses the repository's git-ignored datasets/ cache so it decodes only once).
CIFAR-10 and image-folder tests build tiny archives and folders of PNGs themselves.
"""

import functools
import gzip
import hashlib
import http.server
import io
import os
import pickle
import shutil
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

import neuro
from neuro import datasets, imagefolder
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
    monkeypatch.setattr(datasets, "CIFAR10_MIRRORS", [])
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
    with pytest.raises(NeuroError, match="unknown data set 'cifar'; known: cifar10, mnist, or imagefolder:PATH"):
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


# --- CIFAR-10 and image folders (tiny data made here) -------------------------------------------

IMAGE_HW = (5, 4)  # height, width of the test images


def write_png(path: Path, pixels: np.ndarray) -> None:
    """Write uint8 (C, H, W) pixels as a PNG (lossless, so decoding gives them back exactly)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels[0] if len(pixels) == 1 else pixels.transpose(1, 2, 0)).save(path, format="PNG")


def make_tree(root: Path, layout: dict, seed: int = 0, channels: int = 3, suffix: str = ".png") -> dict:
    """Write ``layout[split][class] = n`` PNG images under ``root``; return split -> (pixels, class names).

    Classes and files are written in reverse order, so loading must sort them.
    """
    rng = np.random.default_rng(seed)
    expected = {}
    for split, by_class in layout.items():
        pixels = []
        for cls in sorted(by_class, reverse=True):
            for i in reversed(range(by_class[cls])):
                image = rng.integers(0, 256, (channels, *IMAGE_HW), dtype=np.uint8)
                write_png(root / split / cls / f"{i:03d}{suffix}", image)
                pixels.append((cls, i, image))
        pixels.sort(key=lambda t: (t[0], t[1]))
        expected[split] = (np.stack([p for _, _, p in pixels]), [c for c, _, _ in pixels])
    return expected


def make_tar(folder: Path, dest: Path, arcname: str = ".") -> Path:
    """Pack ``folder``'s contents into ``dest`` (compression from the suffix), as under ``arcname``."""
    mode = {".gz": "w:gz", ".xz": "w:xz", ".tar": "w"}[dest.suffix]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, mode) as tar:
        tar.add(folder, arcname=arcname)
    return dest


def make_canonical(dest: Path, per_batch: int = 3, seed: int = 0, extra: dict | None = None):
    """A tiny ``cifar-10-python.tar.gz`` laid out as the real one (Python-2-style pickles, bytes keys).

    Returns (train pixels, train labels, test pixels, test labels) as uint8 NCHW and int64.
    """
    rng = np.random.default_rng(seed)
    out = {}
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w:gz") as tar:
        def add(name, obj):
            data = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("batches.meta", {b"label_names": [c.encode() for c in datasets.CIFAR10_CLASSES],
                             b"num_cases_per_batch": per_batch, b"num_vis": 3072})
        for name in [*datasets.SPLITS["cifar10"]["train"], "test_batch"]:
            data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            labels = rng.permutation(np.arange(per_batch) % 10).tolist()
            add(name, {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                       b"filenames": [b"x.png"] * per_batch, **(extra or {})})
            out[name] = (data.reshape(-1, 3, 32, 32), np.array(labels, dtype=np.int64))
    train = [out[f] for f in datasets.SPLITS["cifar10"]["train"]]
    return (np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]),
            *out["test_batch"])


def pin(monkeypatch, file: str, path: Path) -> None:
    """Make ``path``'s checksum the one expected of CIFAR-10 archive ``file`` (for fakes)."""
    algo = datasets.CIFAR10_ARCHIVES[file][0]
    digest = hashlib.new(algo, path.read_bytes()).hexdigest()
    monkeypatch.setitem(datasets.CIFAR10_ARCHIVES, file, (algo, digest))


@pytest.fixture
def count_decodes(monkeypatch):
    """Count image decodes: returns a list whose length is the number of images decoded so far."""
    calls = []
    real = imagefolder.decode_image

    def counting(*args):
        calls.append(args[2])
        return real(*args)

    monkeypatch.setattr(imagefolder, "decode_image", counting)
    return calls


SMALL = {"train": {"zebra": 2, "ant": 3, "moth": 1}, "test": {"zebra": 1, "ant": 2, "moth": 2}}


def test_imagefolder_directory_loads_sorted_classes_nchw_float(tmp_path):
    expected = make_tree(tmp_path / "data", SMALL)
    for split in ("train", "test"):
        images, labels = datasets.load(f"imagefolder:{tmp_path / 'data'}", split)
        pixels, names = expected[split]
        assert images.shape == (len(pixels), 3, *IMAGE_HW) and images.dtype == np.float32
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(images, pixels.astype(np.float32) / np.float32(255))
        assert labels.tolist() == [["ant", "moth", "zebra"].index(n) for n in names]
        assert not images.flags.writeable
    assert datasets.classes(f"imagefolder:{tmp_path / 'data'}") == ["ant", "moth", "zebra"]


def test_imagefolder_tar_matches_directory_and_grayscale_is_one_channel(tmp_path):
    expected = make_tree(tmp_path / "data", SMALL, channels=1, suffix=".jpg.png")
    tar = make_tar(tmp_path / "data", tmp_path / "mine.tar.xz", arcname="mine")  # one enclosing folder
    from_dir, labels_dir = datasets.load(f"imagefolder:{tmp_path / 'data'}", "train")
    from_tar, labels_tar = datasets.load(f"imagefolder:{tar}", "train")
    assert from_tar.shape == (6, 1, *IMAGE_HW)
    np.testing.assert_array_equal(from_tar, from_dir)
    np.testing.assert_array_equal(from_tar[:, 0], expected["train"][0][:, 0] / np.float32(255))
    assert labels_tar.tolist() == labels_dir.tolist() == [0, 0, 0, 1, 2, 2]
    assert len(list((datasets.CACHE_DIR / "decoded").glob("mine-*.npz"))) == 1


def test_second_load_reads_the_cache_not_the_images(tmp_path, count_decodes):
    make_tree(tmp_path / "data", SMALL)
    spec = f"imagefolder:{tmp_path / 'data'}"
    first, labels = datasets.load(spec, "test")
    assert len(count_decodes) == 11  # both splits are decoded together
    [cache] = (datasets.CACHE_DIR / "decoded").glob("*.npz")
    stamp = cache.stat().st_mtime_ns
    datasets._read_split.cache_clear()  # no in-memory shortcut: read the cache file
    again, labels_again = datasets.load(spec, "test")
    train, _ = datasets.load(spec, "train")
    assert len(count_decodes) == 11 and cache.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again, first)
    assert labels_again.tolist() == labels.tolist() and train.shape == (6, 3, *IMAGE_HW)


def test_changed_folder_is_decoded_again(tmp_path, count_decodes):
    make_tree(tmp_path / "data", SMALL)
    spec = f"imagefolder:{tmp_path / 'data'}"
    assert len(datasets.load(spec, "test")[0]) == 5
    write_png(tmp_path / "data" / "test" / "ant" / "new.png", np.zeros((3, *IMAGE_HW), np.uint8))
    images, labels = datasets.load(spec, "test")
    assert len(images) == 6 and len(count_decodes) == 11 + 12
    assert images[2].max() == 0 and labels[2] == 0  # ant/new.png sorts after ant/001.png


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other key"])
def test_a_bad_cache_is_rebuilt(tmp_path, count_decodes, damage):
    make_tree(tmp_path / "data", SMALL)
    spec = f"imagefolder:{tmp_path / 'data'}"
    first, _ = datasets.load(spec, "train")
    [cache] = (datasets.CACHE_DIR / "decoded").glob("*.npz")
    good = cache.read_bytes()
    if damage == "truncate":
        cache.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        cache.write_bytes(b"not a cache")
    else:
        with np.load(cache) as z:
            arrays = dict(z)
        np.savez(cache, **{**arrays, "key": np.array("written by another version")})
    datasets._read_split.cache_clear()
    again, _ = datasets.load(spec, "train")
    assert len(count_decodes) == 22
    np.testing.assert_array_equal(again, first)
    datasets._read_split.cache_clear()
    np.testing.assert_array_equal(datasets.load(spec, "train")[0], first)
    assert len(count_decodes) == 22  # the rebuilt cache is good
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temp files left


def test_non_image_file_is_an_error_and_nothing_is_cached(tmp_path):
    make_tree(tmp_path / "data", SMALL)
    (tmp_path / "data" / "train" / "moth" / "notes.txt").write_text("not an image")
    with pytest.raises(NeuroError, match=r"train/moth/notes\.txt is not a readable image .*remove it") as err:
        datasets.load(f"imagefolder:{tmp_path / 'data'}", "test")
    assert "\n" not in str(err.value)
    assert files_under(datasets.CACHE_DIR) == []


def test_train_and_test_classes_must_match(tmp_path):
    make_tree(tmp_path / "data", {"train": {"cat": 1, "dog": 1}, "test": {"cat": 1, "cow": 1}})
    with pytest.raises(NeuroError, match=r"train and test have different classes \(only in train: dog; "
                                         r"only in test: cow\); give both splits the same class folders"):
        datasets.load(f"imagefolder:{tmp_path / 'data'}", "train")
    assert files_under(datasets.CACHE_DIR) == []


def test_images_of_different_sizes_are_an_error(tmp_path):
    make_tree(tmp_path / "data", {"train": {"cat": 2}})
    write_png(tmp_path / "data" / "train" / "cat" / "big.png", np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(NeuroError, match=r"train/cat/big\.png is 8x8 pixels but earlier images are 4x5"):
        datasets.load(f"imagefolder:{tmp_path / 'data'}", "train")


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tar.xz"])
def test_truncated_tar_is_an_error_and_nothing_is_cached(tmp_path, suffix):
    make_tree(tmp_path / "data", SMALL)
    tar = make_tar(tmp_path / "data", tmp_path / f"data{suffix}")
    data = tar.read_bytes()
    tar.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(NeuroError, match=r"data\.tar.*: truncated or corrupt archive \(.*\); re-download") as err:
        datasets.load(f"imagefolder:{tar}", "train")
    assert "\n" not in str(err.value)
    assert files_under(datasets.CACHE_DIR) == []


def test_tar_cut_between_members_is_an_error(tmp_path):
    """tarfile alone reads a tar cut at a member boundary as a shorter archive, silently."""
    make_tree(tmp_path / "data", SMALL)
    tar = make_tar(tmp_path / "data", tmp_path / "data.tar")
    with tarfile.open(tar) as t:
        last = t.getmembers()[-1].offset
    tar.write_bytes(tar.read_bytes()[:last])
    with pytest.raises(NeuroError, match=r"truncated or corrupt archive \(no valid tar header or end-of-archive"):
        datasets.load(f"imagefolder:{tar}", "train")


def test_only_a_train_split_and_other_folder_errors(tmp_path):
    make_tree(tmp_path / "data", {"train": {"cat": 1, "dog": 2}})
    spec = f"imagefolder:{tmp_path / 'data'}"
    assert datasets.load(spec, "train")[1].tolist() == [0, 1, 1]
    for _ in range(2):  # decoding, then from the cache
        with pytest.raises(NeuroError, match=r"data has no test/ images; add a test/<class>/ folder"):
            datasets.load(spec, "test")
    with pytest.raises(NeuroError, match=r"unknown split 'val' of imagefolder:.*; use one of: train, test"):
        datasets.load(spec, "val")
    with pytest.raises(NeuroError, match=r"image folder '.*nope' does not exist"):
        datasets.load(f"imagefolder:{tmp_path / 'nope'}", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NeuroError, match=r"empty holds no train/ or test/ folder; lay the images out as"):
        datasets.load(f"imagefolder:{tmp_path / 'empty'}", "train")
    (tmp_path / "data" / "train" / "emu").mkdir()
    with pytest.raises(NeuroError, match=r"train/emu holds no images"):
        datasets.load(spec, "train")


def test_spec_error_and_experiment_schema():
    from neuro import experiment

    for ok in ("mnist", "cifar10", "imagefolder:/some/where"):
        assert datasets.spec_error(ok) is None
    for bad in ("cifar", "imagefolder:", "CIFAR10"):
        assert datasets.spec_error(bad) == "must be one of 'mnist', 'cifar10' or 'imagefolder:PATH'"
    raw = {"model": {"path": "m.onnx"}, "data": {"dataset": "imagefolder:pics"}}
    assert experiment._validate(Path("x.toml"), raw)["data"]["dataset"] == "imagefolder:pics"
    raw["data"]["dataset"] = "cifar"
    with pytest.raises(NeuroError, match=r"key 'data.dataset' must be one of 'mnist', 'cifar10' or "
                                         r"'imagefolder:PATH', got 'cifar'"):
        experiment._validate(Path("x.toml"), raw)


# canonical archive

def test_canonical_archive_loads_from_neuro_data(tmp_path, monkeypatch):
    archive = tmp_path / "data" / "cifar10" / datasets.CIFAR10_CANONICAL
    train_x, train_y, test_x, test_y = make_canonical(archive)
    pin(monkeypatch, datasets.CIFAR10_CANONICAL, archive)
    monkeypatch.setenv("NEURO_DATA", str(tmp_path / "data"))
    images, labels = datasets.load("cifar10", "train", download=False)
    assert images.shape == (15, 3, 32, 32) and images.dtype == np.float32 and labels.dtype == np.int64
    np.testing.assert_array_equal(images, train_x / np.float32(255))
    assert labels.tolist() == train_y.tolist()
    images, labels = datasets.load("cifar10", "test", download=False)
    np.testing.assert_array_equal(images, test_x / np.float32(255))
    assert labels.tolist() == test_y.tolist()
    assert datasets.classes("cifar10", download=False) == list(datasets.CIFAR10_CLASSES)
    digest = datasets.CIFAR10_ARCHIVES[datasets.CIFAR10_CANONICAL][1]
    assert [p.name for p in files_under(datasets.CACHE_DIR)] == [f"cifar-10-python-{digest[:16]}.npz"]


def test_canonical_label_ids_match_the_sorted_folder_copy(tmp_path, monkeypatch):
    """The same pixels as the canonical archive and as an image-folder copy give the same labels."""
    canonical = tmp_path / "a" / datasets.CIFAR10_CANONICAL
    train_x, train_y, test_x, test_y = make_canonical(canonical, per_batch=12)
    for split, xs, ys in (("train", train_x, train_y), ("test", test_x, test_y)):
        for i, (x, y) in enumerate(zip(xs, ys)):
            write_png(tmp_path / "tree" / split / datasets.CIFAR10_CLASSES[y] / f"{i:04d}.png", x)
    copy = make_tar(tmp_path / "tree", tmp_path / "b" / "cifar10-jpeg.tar.xz")
    pin(monkeypatch, datasets.CIFAR10_CANONICAL, canonical)
    pin(monkeypatch, "cifar10-jpeg.tar.xz", copy)
    a_x, a_y = datasets.load("cifar10", "test", root=tmp_path / "a")
    b_x, b_y = datasets.load("cifar10", "test", root=tmp_path / "b")
    order = np.argsort(a_y, kind="stable")  # the folder copy is ordered by class
    assert b_y.tolist() == a_y[order].tolist()
    np.testing.assert_array_equal(b_x, a_x[order])


def test_canonical_preferred_over_the_jpeg_copy_in_one_folder(tmp_path, monkeypatch):
    folder = tmp_path / "cifar10"
    make_canonical(folder / datasets.CIFAR10_CANONICAL)
    (folder / "cifar10-jpeg.tar.xz").write_bytes(b"would fail its checksum")
    pin(monkeypatch, datasets.CIFAR10_CANONICAL, folder / datasets.CIFAR10_CANONICAL)
    assert datasets.load("cifar10", "test", root=tmp_path)[0].shape == (3, 3, 32, 32)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_canonical_checksum_error_leaves_no_cache(tmp_path, monkeypatch, damage):
    archive = tmp_path / "cifar10" / datasets.CIFAR10_CANONICAL
    make_canonical(archive)
    pin(monkeypatch, datasets.CIFAR10_CANONICAL, archive)
    data = bytearray(archive.read_bytes())
    if damage == "flip":
        data[100] ^= 0xFF
    else:
        del data[len(data) // 2:]
    archive.write_bytes(bytes(data))
    with pytest.raises(NeuroError, match=r"cifar-10-python\.tar\.gz: md5 \w{12}\.\.\. is not that of "
                                         r"cifar-10-python\.tar\.gz \(truncated or a different file\); delete it "
                                         r"and re-download") as err:
        datasets.load("cifar10", "test", root=tmp_path, download=False)
    assert "\n" not in str(err.value)
    assert files_under(datasets.CACHE_DIR) == []


def test_real_checksums_are_pinned(tmp_path):
    (tmp_path / "cifar10-jpeg.tar.xz").write_bytes(b"x")
    with pytest.raises(NeuroError, match=r"sha256 2d711642b726\.\.\. is not that of cifar10-jpeg\.tar\.xz"):
        datasets.load("cifar10", "test", root=tmp_path, download=False)
    assert datasets.CIFAR10_ARCHIVES[datasets.CIFAR10_CANONICAL] == ("md5", "c58f30108f718f92721af3b95e74349a")


def test_truncated_canonical_archive_with_matching_checksum_is_a_decode_error(tmp_path, monkeypatch):
    archive = tmp_path / datasets.CIFAR10_CANONICAL
    make_canonical(archive)
    archive.write_bytes(archive.read_bytes()[:-200])
    pin(monkeypatch, datasets.CIFAR10_CANONICAL, archive)
    with pytest.raises(NeuroError, match=r"truncated or corrupt CIFAR-10 archive \(.*\); delete it and re-download"):
        datasets.load("cifar10", "train", root=tmp_path, download=False)
    assert files_under(datasets.CACHE_DIR) == []


def test_pickled_code_in_a_batch_is_refused(tmp_path, monkeypatch):
    archive = tmp_path / datasets.CIFAR10_CANONICAL
    make_canonical(archive, extra={b"evil": print})
    pin(monkeypatch, datasets.CIFAR10_CANONICAL, archive)
    with pytest.raises(NeuroError, match=r"(__builtin__|builtins)\.print is not allowed in a CIFAR-10 batch"):
        datasets.load("cifar10", "test", root=tmp_path, download=False)


def test_jpeg_copy_with_other_classes_is_an_error(tmp_path, monkeypatch):
    make_tree(tmp_path / "tree", {"train": {"cat": 1, "dog": 1}, "test": {"cat": 1, "dog": 1}})
    copy = make_tar(tmp_path / "tree", tmp_path / "cifar10" / "cifar10-jpeg.tar.xz")
    pin(monkeypatch, "cifar10-jpeg.tar.xz", copy)
    with pytest.raises(NeuroError, match=r"classes cat, dog are not CIFAR-10's \(airplane, automobile"):
        datasets.load("cifar10", "test", root=tmp_path, download=False)


def test_cifar10_missing_without_download(tmp_path):
    with pytest.raises(NeuroError, match=r"no CIFAR-10 archive \(cifar-10-python\.tar\.gz or "
                                         r"cifar10-jpeg\.tar\.xz\) in .*set NEURO_DATA"):
        datasets.load("cifar10", "test", root=tmp_path, download=False)


def test_cifar10_download_from_local_server_then_offline(tmp_path, monkeypatch, serve, count_decodes):
    _, _, test_x, test_y = make_canonical(tmp_path / "www" / datasets.CIFAR10_CANONICAL)
    pin(monkeypatch, datasets.CIFAR10_CANONICAL, tmp_path / "www" / datasets.CIFAR10_CANONICAL)
    monkeypatch.setattr(datasets, "CIFAR10_MIRRORS", [serve(tmp_path / "www")])
    images, labels = datasets.load("cifar10", "test")
    np.testing.assert_array_equal(images, test_x / np.float32(255))
    assert labels.tolist() == test_y.tolist()
    downloaded = datasets.CACHE_DIR / "cifar10" / datasets.CIFAR10_CANONICAL
    assert downloaded.read_bytes() == (tmp_path / "www" / datasets.CIFAR10_CANONICAL).read_bytes()
    monkeypatch.setattr(datasets, "CIFAR10_MIRRORS", [])
    assert datasets.load("cifar10", "test", download=False)[1].tolist() == test_y.tolist()


def test_cifar10_wrong_or_interrupted_download_leaves_nothing(tmp_path, monkeypatch, serve):
    make_canonical(tmp_path / "www" / datasets.CIFAR10_CANONICAL)  # checksum not pinned: the real md5 fails
    wrong, half = serve(tmp_path / "www"), serve(tmp_path / "www", HalfHandler)
    monkeypatch.setattr(datasets, "CIFAR10_MIRRORS", [wrong, half])
    with pytest.raises(NeuroError, match=rf"could not download cifar-10-python\.tar\.gz, tried: {wrong}\S+ "
                                         rf"\(md5 \w{{12}}\.\.\. is not that of cifar-10-python\.tar\.gz\); "
                                         rf"{half}\S+ \(connection closed after"):
        datasets.load("cifar10", "test")
    assert files_under(datasets.CACHE_DIR) == []


# normalisation

def test_channel_stats_and_normalise():
    rng = np.random.default_rng(1)
    images = rng.random((37, 3, 4, 5)).astype(np.float32) * np.array([1, 0.5, 0.1], np.float32)[:, None, None]
    stats = datasets.channel_stats(images, batch=8)  # several batches, the last one short
    assert set(stats) == {"mean", "std"} and len(stats["mean"]) == 3
    np.testing.assert_allclose(stats["mean"], images.astype(np.float64).mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(stats["std"], images.astype(np.float64).std(axis=(0, 2, 3)), rtol=1e-12)
    assert stats["mean"][2] < 0.06 < stats["mean"][0]
    normed = datasets.normalise(images, stats)
    assert normed.dtype == np.float32
    np.testing.assert_allclose(normed.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(normed.std(axis=(0, 2, 3)), 1, atol=1e-5)
    assert datasets.NORMALISATION_KEY == "normalisation"
    with pytest.raises(NeuroError, match="non-empty"):
        datasets.channel_stats(np.zeros((0, 3, 2, 2)))
    with pytest.raises(NeuroError, match="has a zero"):
        datasets.normalise(images, {"mean": [0, 0, 0], "std": [1, 0, 1]})


# real data

@pytest.fixture(scope="session")
def cifar10_data():
    """The folder holding cifar10/ (from $NEURO_DATA), or skip."""
    env = os.environ.get("NEURO_DATA")
    if not env or not (Path(env) / "cifar10").is_dir():
        pytest.skip("NEURO_DATA/cifar10 is absent; point NEURO_DATA at a folder holding "
                    "cifar10/cifar10-jpeg.tar.xz (CI: ../shared/datasets)")
    return env


@pytest.mark.slow
def test_real_cifar10_test_split(cifar10_data, monkeypatch):
    monkeypatch.setenv("NEURO_DATA", cifar10_data)
    monkeypatch.setattr(datasets, "CACHE_DIR", DEFAULT_CACHE_DIR)  # decode once, reuse on later runs
    images, labels = datasets.load("cifar10", "test", download=False)
    assert images.shape == (10000, 3, 32, 32) and images.dtype == np.float32 and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [1000] * 10
    assert 0 <= images.min() and images.max() <= 1
    assert datasets.classes("cifar10", download=False) == list(datasets.CIFAR10_CLASSES)
