"""Image data sets for the experiments: MNIST, CIFAR-10 and image folders, always checksum-verified.

``load(name, split)`` takes a data spec: ``"mnist"``, ``"cifar10"`` or ``"imagefolder:PATH"``.

MNIST: each IDX file (``.gz`` or raw) is looked for in, in order: an explicit ``root`` directory,
``$NEURO_DATA``, the repository's ``datasets/`` cache (``CACHE_DIR``), each either in a ``<name>/``
subfolder or directly; if none has it and ``download=True``, it is downloaded from ``MIRRORS`` into
``CACHE_DIR/<name>/``. Whatever the source, the decompressed bytes must match the sha256 in ``SHA256``
(docs/datasets.md), so a truncated or wrong file is an error, never silently wrong data.

CIFAR-10: the first of those folders holding one of ``CIFAR10_ARCHIVES`` (the canonical
``cifar-10-python.tar.gz``, preferred, or the JPEG image-folder copy ``cifar10-jpeg.tar.xz``) is used,
after its checksum is verified; with none anywhere and ``download=True`` the canonical archive is
downloaded (``CIFAR10_MIRRORS``, md5-verified, atomic). Image folders (``imagefolder:PATH``: a directory
or tar holding ``train/<class>/*`` and ``test/<class>/*``) are decoded by ``neuro.imagefolder``.
Archives and folders are decoded once into ``CACHE_DIR/decoded/<name>-<hash>.npz`` (written atomically,
keyed by the archive's hash, rebuilt when unreadable), so later loads skip decoding. See docs/datasets.md.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import io
import os
import pickle
import re
import tarfile
import tempfile
import urllib.request
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from neuro import imagefolder
from neuro.atomic import atomic_path
from neuro.errors import NeuroError

#: Default download cache: the git-ignored ``datasets/`` folder next to the ``neuro`` package.
CACHE_DIR = Path(__file__).resolve().parents[1] / "datasets"

#: Mirrors tried in order for downloads; each serves ``<mirror><file>.gz``.
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]

#: Seconds without data before a download from one mirror is given up.
TIMEOUT_S = 30

#: Files of each split per data set: MNIST's (images, labels) IDX files, CIFAR-10's batches in its archive.
SPLITS = {
    "mnist": {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    },
    "cifar10": {
        "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test": ("test_batch",),
    },
}

#: Prefix of a data spec naming an image folder: ``imagefolder:PATH`` (a directory or a tar of one).
IMAGEFOLDER = "imagefolder:"

#: CIFAR-10's classes in the canonical label order 0-9 (also the sorted folder names of an image-folder copy).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

#: The canonical CIFAR-10 archive (pickled batches), the one downloaded.
CIFAR10_CANONICAL = "cifar-10-python.tar.gz"

#: CIFAR-10 archives, preferred first within a folder, and the (algorithm, digest) each must have:
#: the canonical one (its page publishes the md5 only) and the JPEG image-folder copy in the shared
#: data (pixels re-encoded as JPEG, not the canonical ones: see docs/datasets.md).
CIFAR10_ARCHIVES = {
    CIFAR10_CANONICAL: ("md5", "c58f30108f718f92721af3b95e74349a"),
    "cifar10-jpeg.tar.xz": ("sha256", "d7e5cf3d40e6038bc96c4efbb6f4611aaa7a8584d3140fb954bab4d5aebcba32"),
}

#: Mirrors tried in order for the canonical CIFAR-10 archive; each serves ``<mirror>cifar-10-python.tar.gz``.
CIFAR10_MIRRORS = ["https://www.cs.toronto.edu/~kriz/"]

#: The key of a model's metadata holding the per-channel normalisation its input expects:
#: ``{"normalisation": {"mean": [m_c ...], "std": [s_c ...]}}`` in the units ``load`` returns ([0, 1]);
#: the model's input is ``(image - mean) / std`` per channel. ``channel_stats`` computes it.
NORMALISATION_KEY = "normalisation"

#: Version of the decoded-cache format; a cache written by another version is rebuilt.
CACHE_VERSION = 1

#: sha256 of the decompressed MNIST IDX files (also listed in docs/datasets.md).
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


def load(name: str = "mnist", split: str = "test", root=None, download: bool = True):
    """Return ``(images, labels)`` of one split of a data set.

    ``name`` is a data spec: ``"mnist"``, ``"cifar10"`` or ``"imagefolder:PATH"`` (``root`` and
    ``download`` apply to the first two). images: float32 (N, C, H, W), pixel/255 in [0, 1] (MNIST
    (N, 1, 28, 28), CIFAR-10 (N, 3, 32, 32)); labels: int64 (N,), the index into ``classes(name)``.
    Both are READ-ONLY views of an in-memory cache (repeated loads are cheap); call ``.copy()`` for a
    writeable array. Raises NeuroError for an unknown name/split, a missing file (with
    ``download=False``), a file that fails verification or decoding, or a failed download.
    """
    images, labels, _ = _load(name, split, root, download)
    return images.view(), labels.view()


def classes(name: str = "mnist", split: str = "test", root=None, download: bool = True) -> list[str]:
    """The class names of a data set, label i being the i-th (image folders: the sorted folder names)."""
    return list(_load(name, split, root, download)[2])


def spread(total: int, n: int) -> np.ndarray:
    """Indices of min(n, total) items spread evenly over ``total``, every (total / n)-th: class-balanced on a split
    stored class by class, as the CIFAR-10 JPEG copy's (docs/datasets.md), or on a sorted random draw from one."""
    n = min(n, total)
    return (np.arange(n) * total) // n


def spec_error(name) -> str | None:
    """None if ``name`` is a data spec ``load`` accepts, else what is wrong (for config checks)."""
    if name in SPLITS or (isinstance(name, str) and name.startswith(IMAGEFOLDER) and name[len(IMAGEFOLDER):]):
        return None
    return f"must be one of {', '.join(map(repr, SPLITS))} or 'imagefolder:PATH'"


def _load(name: str, split: str, root, download: bool):
    """(images, labels, classes) of one split of any data spec."""
    if isinstance(name, str) and name.startswith(IMAGEFOLDER):
        return _load_imagefolder(name[len(IMAGEFOLDER):], split)
    files = _split_files(name, split)
    if name == "cifar10":
        return _load_cifar10(split, root, download)
    image_file, label_file = files
    dirs = _search_dirs(name, root)
    images = _load_verified(_locate(image_file, name, dirs, download))
    labels = _load_verified(_locate(label_file, name, dirs, download))
    return images, labels, tuple(str(d) for d in range(10))


def _split_files(name: str, split: str) -> tuple[str, ...]:
    """The files of a split, or a NeuroError listing what exists."""
    if name not in SPLITS:
        raise NeuroError(f"unknown data set {name!r}; known: {', '.join(sorted(SPLITS))}, or imagefolder:PATH "
                         f"for a folder of train/<class>/ and test/<class>/ images")
    if split not in SPLITS[name]:
        raise NeuroError(f"unknown split {split!r} of {name}; use one of: {', '.join(SPLITS[name])}")
    return SPLITS[name][split]


def _search_dirs(name: str, root) -> list[Path]:
    """Directories to search, in order: root, $NEURO_DATA, CACHE_DIR; each as ``<name>/`` then itself."""
    bases = []
    if root is not None:
        bases.append(_user_dir(root, "root", name))
    if os.environ.get("NEURO_DATA"):
        bases.append(_user_dir(os.environ["NEURO_DATA"], "NEURO_DATA", name))
    bases.append(Path(CACHE_DIR))
    return [d for base in bases for d in (base / name, base)]


def _user_dir(path, what: str, name: str = "mnist") -> Path:
    """A directory the user named, which must exist (a typo should not silently trigger a download)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise NeuroError(f"{what} directory {path} does not exist; point {what} at the folder holding {name}/")
    return path


def _locate(file: str, name: str, dirs: list[Path], download: bool) -> Path:
    """Path of the first raw or ``.gz`` copy of ``file`` in ``dirs``, else a fresh verified download."""
    for d in dirs:
        for candidate in (d / file, d / f"{file}.gz"):
            if candidate.is_file():
                return candidate
    if not download:
        searched = ", ".join(str(d) for d in dirs)
        raise NeuroError(f"{file}(.gz) not found in {searched}; set NEURO_DATA to a folder holding "
                         f"{name}/{file}.gz, or load with download=True")
    return _download(f"{file}.gz", Path(CACHE_DIR) / name, MIRRORS,
                     lambda tmp: _parse_idx(tmp.read_bytes(), file, gz=True))


def _load_verified(path: Path) -> np.ndarray:
    """The verified, decoded contents of an IDX file, cached in memory per (path, size, mtime)."""
    stat = path.stat()
    return _decode_file(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _decode_file(path: str, size: int, mtime_ns: int) -> np.ndarray:
    """Read, verify and decode one IDX file into a read-only array (size/mtime key the cache only)."""
    file = Path(path)
    try:
        array = _parse_idx(file.read_bytes(), _idx_name(file), gz=file.suffix == ".gz")
    except (OSError, ValueError) as exc:
        raise NeuroError(f"{file}: {_one_line(exc)}; delete it and re-download, or set NEURO_DATA "
                         f"to a folder holding good copies") from None
    array.flags.writeable = False
    return array


def _idx_name(path: Path) -> str:
    """The IDX file name without ``.gz``, i.e. the key into SHA256."""
    return path.name[:-3] if path.suffix == ".gz" else path.name


def _parse_idx(data: bytes, file: str, gz: bool) -> np.ndarray:
    """Decompress, check structure and sha256, decode: images float32 (N,1,H,W)/255, labels int64.

    Raises ValueError with the reason (truncated, corrupt gzip, bad header, checksum mismatch).
    """
    raw = _gunzip(data) if gz else data
    counts = _idx_shape(raw)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SHA256[file]:
        raise ValueError(f"sha256 {digest[:12]}... is not that of the MNIST file {file}")
    values = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * len(counts)).reshape(counts)
    if len(counts) == 1:
        return values.astype(np.int64)
    return (values.astype(np.float32) / np.float32(255)).reshape(counts[0], 1, *counts[1:])


def _gunzip(data: bytes) -> bytes:
    """Decompressed gzip bytes; a truncated or corrupt stream is a ValueError."""
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"corrupt or truncated gzip ({_one_line(exc)})") from None


def _idx_shape(raw: bytes) -> tuple[int, ...]:
    """Dimensions declared by an unsigned-byte IDX header, checked against the data length."""
    if len(raw) < 4 or raw[0:3] != b"\x00\x00\x08" or raw[3] not in (1, 3):
        raise ValueError(f"not an unsigned-byte IDX file (magic {raw[:4].hex() or 'missing'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"truncated IDX header ({len(raw)} bytes)")
    counts = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(counts))
    if len(raw) != expected:
        raise ValueError(f"IDX header declares {'x'.join(map(str, counts))} = {expected} bytes "
                         f"but the data has {len(raw)} (truncated or wrong file)")
    return counts


def _download(file: str, dest_dir: Path, mirrors, verify) -> Path:
    """Download ``file`` into ``dest_dir`` from the first of ``mirrors`` whose copy passes ``verify``.

    ``verify(path)`` raises ValueError for a wrong file.
    """
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NeuroError(f"cannot create the download folder {dest_dir} ({_one_line(exc)}); "
                         f"set NEURO_DATA to a folder holding {dest_dir.name}/{file}") from None
    failures = []
    for mirror in mirrors:
        url = f"{mirror.rstrip('/')}/{file}"
        try:
            return _fetch(url, dest_dir / file, verify)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            failures.append(f"{url} ({_one_line(exc)})")
    tried = "; ".join(failures) or "no mirrors configured"
    raise NeuroError(f"could not download {file}, tried: {tried}; check the connection, or put the "
                     f"files in a folder and set NEURO_DATA to it")


def _fetch(url: str, dest: Path, verify) -> Path:
    """Stream ``url`` into a temp file beside ``dest``, verify it, then rename it atomically.

    The temp file is removed on any failure or interrupt, so no partial file is ever left behind.
    """
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            _copy_with_progress(response, out, dest.name)
        verify(Path(tmp))
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def _copy_with_progress(response, out, label: str) -> None:
    """Copy an HTTP response body to ``out`` with a tqdm bar; a short body is a ValueError."""
    from tqdm import tqdm   # here, not at import: `neuro --help` imports this module

    total = int(response.headers.get("Content-Length") or 0) or None
    received = 0
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label, leave=False) as bar:
        while chunk := response.read(1 << 16):
            out.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    if total is not None and received != total:
        raise ValueError(f"connection closed after {received} of {total} bytes")


def _one_line(exc: BaseException) -> str:
    """An exception's message collapsed onto one line (error messages must be one line)."""
    return " ".join(str(exc).split()) or type(exc).__name__


# --- CIFAR-10 and image folders ------------------------------------------------------------------

def _load_cifar10(split: str, root, download: bool):
    """(images, labels, classes) of a CIFAR-10 split from the first archive found (or downloaded)."""
    archive = _locate_cifar10(_search_dirs("cifar10", root), download)
    algo, expected = CIFAR10_ARCHIVES[archive.name]
    digest = _digest(archive, algo)
    if digest != expected:
        raise NeuroError(f"{archive}: {algo} {digest[:12]}... is not that of {archive.name} (truncated or a "
                         f"different file); delete it and re-download, or set NEURO_DATA to a folder holding "
                         f"cifar10/{archive.name}")
    if archive.name == CIFAR10_CANONICAL:
        tag, decode = f"cifar10 {algo}:{digest}", lambda: _read_cifar_python(archive)
    else:
        tag = f"cifar10 {algo}:{digest} Pillow {_pillow_version()}"
        decode = lambda: _check_cifar_classes(imagefolder.read(archive), archive)  # noqa: E731
    return _cached(archive, digest, tag, split, decode)


def _locate_cifar10(dirs: list[Path], download: bool) -> Path:
    """The first CIFAR-10 archive in ``dirs`` (canonical preferred within a folder), else a download."""
    for d in dirs:
        for file in CIFAR10_ARCHIVES:
            if (d / file).is_file():
                return d / file
    if not download:
        raise NeuroError(f"no CIFAR-10 archive ({' or '.join(CIFAR10_ARCHIVES)}) in "
                         f"{', '.join(str(d) for d in dirs)}; set NEURO_DATA to a folder holding cifar10/ with "
                         f"one, or load with download=True")
    algo, expected = CIFAR10_ARCHIVES[CIFAR10_CANONICAL]
    return _download(CIFAR10_CANONICAL, Path(CACHE_DIR) / "cifar10", CIFAR10_MIRRORS,
                     lambda tmp: _check_digest(tmp, algo, expected, CIFAR10_CANONICAL))


def _check_digest(path: Path, algo: str, expected: str, name: str) -> None:
    """ValueError unless the file at ``path`` has the digest ``expected``."""
    digest = _hash(path, algo)
    if digest != expected:
        raise ValueError(f"{algo} {digest[:12]}... is not that of {name}")


def _digest(path: Path, algo: str) -> str:
    """Hex digest of a file, cached in memory per (path, size, mtime)."""
    stat = path.stat()
    return _cached_hash(str(path.resolve()), stat.st_size, stat.st_mtime_ns, algo)


@functools.lru_cache(maxsize=16)
def _cached_hash(path: str, size: int, mtime_ns: int, algo: str) -> str:
    return _hash(Path(path), algo)


def _hash(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _check_cifar_classes(data: imagefolder.Decoded, source: Path) -> imagefolder.Decoded:
    if tuple(data.classes) != CIFAR10_CLASSES:
        raise NeuroError(f"{source}: classes {', '.join(data.classes)} are not CIFAR-10's "
                         f"({', '.join(CIFAR10_CLASSES)}); use an unmodified archive")
    return data


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-10 batches (dicts, lists, numpy arrays) and nothing else: no arbitrary code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR-10 batch")
        if module.startswith("numpy.core") and hasattr(np, "_core"):
            module = "numpy._core" + module[len("numpy.core"):]  # numpy 2 moved numpy.core
        return super().find_class(module, name)


def _read_cifar_python(path: Path) -> imagefolder.Decoded:
    """Decode the canonical archive: ``cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``."""
    wanted = {file: split for split, files in SPLITS["cifar10"].items() for file in files}
    batches, meta = {}, None
    try:
        for member, read in imagefolder.tar_members(path):
            base = member.name.rsplit("/", 1)[-1]
            if member.isfile() and (base in wanted or base == "batches.meta"):
                obj = _BatchUnpickler(io.BytesIO(read()), encoding="bytes").load()
                if base == "batches.meta":
                    meta = obj
                else:
                    batches[base] = _batch_arrays(obj, base)
    except (tarfile.TarError, EOFError, zlib.error, OSError, pickle.UnpicklingError, ValueError, KeyError,
            TypeError, AttributeError, IndexError) as exc:
        raise NeuroError(f"{path}: truncated or corrupt CIFAR-10 archive ({_one_line(exc)}); delete it and "
                         f"re-download") from None
    missing = [f for f in wanted if f not in batches] + (["batches.meta"] if meta is None else [])
    if missing:
        raise NeuroError(f"{path} lacks cifar-10-batches-py/{missing[0]}; delete it and re-download")
    names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in _field(meta, "label_names"))
    data = _check_cifar_classes(imagefolder.Decoded(list(names), {}), path)
    for split, files in SPLITS["cifar10"].items():
        data.splits[split] = (np.concatenate([batches[f][0] for f in files]),
                              np.concatenate([batches[f][1] for f in files]))
    return data


def _field(obj: dict, key: str):
    return obj[key.encode()] if key.encode() in obj else obj[key]


def _batch_arrays(obj: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (N, 3, 32, 32), int64 (N,)) of one unpickled batch; a malformed one is a ValueError."""
    data = np.asarray(_field(obj, "data"))
    labels = np.asarray(_field(obj, "labels"), dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
        raise ValueError(f"{name} holds {data.dtype} data of shape {data.shape} and {labels.shape} labels, "
                         f"not uint8 (N, 3072) and (N,)")
    if len(labels) and not 0 <= labels.min() <= labels.max() < len(CIFAR10_CLASSES):
        raise ValueError(f"{name} has labels outside 0-9")
    return data.reshape(-1, 3, 32, 32), labels


def _load_imagefolder(path_text: str, split: str):
    """(images, labels, classes) of one split of the image folder (directory or tar) at ``path_text``."""
    if split not in imagefolder.SPLIT_NAMES:
        raise NeuroError(f"unknown split {split!r} of {IMAGEFOLDER}{path_text}; use one of: "
                         f"{', '.join(imagefolder.SPLIT_NAMES)}")
    path = Path(path_text).expanduser()
    if not path_text or not path.exists():
        raise NeuroError(f"image folder {path_text!r} does not exist; give {IMAGEFOLDER}PATH with PATH a folder "
                         f"(or tar) holding train/<class>/ and test/<class>/ images")
    algo, digest = ("files", _tree_digest(path)) if path.is_dir() else ("sha256", _digest(path, "sha256"))
    tag = f"imagefolder {algo}:{digest} Pillow {_pillow_version()}"
    return _cached(path, digest, tag, split, lambda: imagefolder.read(path))


def _tree_digest(root: Path) -> str:
    """sha256 over the (relative path, size, mtime) of every entry under the split folders of ``root``."""
    h = hashlib.sha256()
    for split in imagefolder.SPLIT_NAMES:
        if (root / split).is_dir():
            for p in sorted((root / split).rglob("*")):
                stat = p.stat()
                h.update(f"{p.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _pillow_version() -> str:
    try:
        import PIL
    except ModuleNotFoundError:
        raise NeuroError("reading image files needs Pillow: pip install pillow") from None
    return PIL.__version__


class _BadCache(Exception):
    """A decoded-cache file that is unreadable, truncated or from another source/version: rebuild it."""


class _NoSplit(Exception):
    """A good decoded-cache file whose source has no such split."""


def _cached(source: Path, digest: str, tag: str, split: str, decode):
    """(images, labels, classes) of ``split`` from the decoded cache of ``source``, decoding it when needed.

    The cache ``CACHE_DIR/decoded/<name>-<digest[:16]>.npz`` holds every split as uint8 and is written
    atomically after a successful decode; one that fails to read or whose key is not ``tag`` is rebuilt.
    """
    tag = f"{tag} v{CACHE_VERSION}"
    cache = Path(CACHE_DIR) / "decoded" / f"{_stem(source)}-{digest[:16]}.npz"
    if cache.is_file():
        stat = cache.stat()
        try:
            return _read_split(str(cache), stat.st_size, stat.st_mtime_ns, tag, split)
        except _BadCache:
            pass
        except _NoSplit:
            raise _missing_split(source, split) from None
    data = decode()
    _write_cache(cache, tag, data)
    if split not in data.splits:
        raise _missing_split(source, split)
    images, labels = data.splits[split]
    return _readonly(_to_float(images)), _readonly(labels), tuple(data.classes)


@functools.lru_cache(maxsize=4)
def _read_split(path: str, size: int, mtime_ns: int, tag: str, split: str):
    """One split from a cache file (keyed by its size and mtime in memory); a bad file is _BadCache."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != tag:
                raise _BadCache("another source or version")
            splits, classes = z["splits"].tolist(), tuple(z["classes"].tolist())
            if split in splits:
                images, labels = z[f"{split}_images"], z[f"{split}_labels"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise _BadCache(_one_line(exc)) from None
    if split not in splits:
        raise _NoSplit(split)
    if (images.dtype != np.uint8 or images.ndim != 4 or labels.dtype != np.int64 or labels.shape != (len(images),)
            or (len(labels) and not 0 <= labels.min() <= labels.max() < len(classes))):
        raise _BadCache("inconsistent arrays")
    return _readonly(_to_float(images)), _readonly(labels), classes


def _write_cache(cache: Path, tag: str, data: imagefolder.Decoded) -> None:
    """Write the decoded data atomically; a folder that cannot be written only costs a warning."""
    arrays = {"key": np.array(tag), "classes": np.array(data.classes), "splits": np.array(list(data.splits))}
    for split, (images, labels) in data.splits.items():
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    try:
        with atomic_path(cache) as tmp, open(tmp, "wb") as out:
            np.savez(out, **arrays)
    except OSError as exc:
        warnings.warn(f"could not write the decoded cache {cache} ({_one_line(exc)}); the next load decodes "
                      f"again", stacklevel=4)


def _missing_split(source: Path, split: str) -> NeuroError:
    return NeuroError(f"{source} has no {split}/ images; add a {split}/<class>/ folder, or load another split")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in imagefolder.TAR_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "data"


def _to_float(images: np.ndarray) -> np.ndarray:
    out = images.astype(np.float32)
    out /= np.float32(255)
    return out


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


# --- normalisation -----------------------------------------------------------------------------

def channel_stats(images, batch: int = 4096) -> dict:
    """Per-channel mean and (population) std of NCHW images, as a model's ``NORMALISATION_KEY`` metadata.

    Returns ``{"mean": [float per channel], "std": [...]}`` in the images' units (``load``: [0, 1]);
    accumulated in float64 over batches, so the training set needs no float64 copy.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.size == 0:
        raise NeuroError(f"channel_stats needs a non-empty (N, C, H, W) array, got shape {images.shape}")
    count = images.shape[0] * images.shape[2] * images.shape[3]
    total = np.zeros(images.shape[1])
    for i in range(0, len(images), batch):
        total += images[i:i + batch].sum(axis=(0, 2, 3), dtype=np.float64)
    mean = total / count
    squares = np.zeros(images.shape[1])
    for i in range(0, len(images), batch):
        squares += np.square(images[i:i + batch] - mean[:, None, None]).sum(axis=(0, 2, 3))
    return {"mean": mean.tolist(), "std": np.sqrt(squares / count).tolist()}


def normalise(images, stats: dict) -> np.ndarray:
    """``(images - mean) / std`` per channel, float32; ``stats`` as from ``channel_stats`` (model metadata)."""
    mean = np.asarray(stats["mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(stats["std"], dtype=np.float32)[:, None, None]
    if np.any(std <= 0):
        raise NeuroError(f"normalisation std {stats['std']} has a zero; a constant channel cannot be normalised")
    return ((np.asarray(images, dtype=np.float32) - mean) / std).astype(np.float32)
