"""Image data sets for the experiments: MNIST, found locally or downloaded, always checksum-verified.

``load(name, split)`` looks for each IDX file (``.gz`` or raw) in, in order: an explicit ``root``
directory, ``$NEURO_DATA``, the repository's ``datasets/`` cache (``CACHE_DIR``), each either in a
``<name>/`` subfolder or directly; if none has it and ``download=True``, it downloads it from
``MIRRORS`` into ``CACHE_DIR/<name>/``. Whatever the source, the decompressed bytes must match the
sha256 in DESIGN.md ("Data"), so a truncated or wrong file is an error, never silently wrong data.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

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

#: Files of each split, as (images, labels), per data set.
SPLITS = {
    "mnist": {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    },
}

#: sha256 of the decompressed IDX files (DESIGN.md, "Data").
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


def load(name: str = "mnist", split: str = "test", root=None, download: bool = True):
    """Return ``(images, labels)`` of one split of a data set.

    images: float32 (N, 1, 28, 28), pixel/255 in [0, 1]; labels: int64 (N,). Both are READ-ONLY
    views of an in-memory cache (repeated loads are cheap); call ``.copy()`` for a writeable array.
    Raises NeuroError for an unknown name/split, a missing file (with ``download=False``), a file
    that fails verification, or a download that fails on every mirror.
    """
    image_file, label_file = _split_files(name, split)
    dirs = _search_dirs(name, root)
    images = _load_verified(_locate(image_file, name, dirs, download))
    labels = _load_verified(_locate(label_file, name, dirs, download))
    return images.view(), labels.view()


def _split_files(name: str, split: str) -> tuple[str, str]:
    """The (images, labels) file names of a split, or a NeuroError listing what exists."""
    if name not in SPLITS:
        raise NeuroError(f"unknown data set {name!r}; known: {', '.join(sorted(SPLITS))}")
    if split not in SPLITS[name]:
        raise NeuroError(f"unknown split {split!r} of {name}; use one of: {', '.join(SPLITS[name])}")
    return SPLITS[name][split]


def _search_dirs(name: str, root) -> list[Path]:
    """Directories to search, in order: root, $NEURO_DATA, CACHE_DIR; each as ``<name>/`` then itself."""
    bases = []
    if root is not None:
        bases.append(_user_dir(root, "root"))
    if os.environ.get("NEURO_DATA"):
        bases.append(_user_dir(os.environ["NEURO_DATA"], "NEURO_DATA"))
    bases.append(Path(CACHE_DIR))
    return [d for base in bases for d in (base / name, base)]


def _user_dir(path, what: str) -> Path:
    """A directory the user named, which must exist (a typo should not silently trigger a download)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise NeuroError(f"{what} directory {path} does not exist; point {what} at the folder holding mnist/")
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
    return _download(file, Path(CACHE_DIR) / name)


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


def _download(file: str, dest_dir: Path) -> Path:
    """Download ``file``.gz into ``dest_dir`` from the first mirror whose copy verifies."""
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NeuroError(f"cannot create the download folder {dest_dir} ({_one_line(exc)}); "
                         f"set NEURO_DATA to a folder holding {dest_dir.name}/{file}.gz") from None
    failures = []
    for mirror in MIRRORS:
        url = f"{mirror.rstrip('/')}/{file}.gz"
        try:
            return _fetch(url, dest_dir / f"{file}.gz")
        except (OSError, ValueError, http.client.HTTPException) as exc:
            failures.append(f"{url} ({_one_line(exc)})")
    tried = "; ".join(failures) or "no mirrors configured"
    raise NeuroError(f"could not download {file}.gz, tried: {tried}; check the connection, or put the "
                     f"files in a folder and set NEURO_DATA to it")


def _fetch(url: str, dest: Path) -> Path:
    """Stream ``url`` into a temp file beside ``dest``, verify it, then rename it atomically.

    The temp file is removed on any failure or interrupt, so no partial file is ever left behind.
    """
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            _copy_with_progress(response, out, dest.name)
        _parse_idx(Path(tmp).read_bytes(), _idx_name(dest), gz=True)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def _copy_with_progress(response, out, label: str) -> None:
    """Copy an HTTP response body to ``out`` with a tqdm bar; a short body is a ValueError."""
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
