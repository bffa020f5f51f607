"""Decoding of image-folder data: ``<split>/<class>/<image>`` in a directory or in a tar archive.

``read(path)`` returns every split found (``train``, ``test``) as uint8 NCHW arrays with int64 labels,
the classes being the sorted class-folder names (label i = the i-th name). Every image must decode
(Pillow) and all must share one size; both splits, when present, must have the same classes. Any
violation is a one-line NeuroError naming the file and the fix. Caching is ``neuro.datasets``' job.
"""

from __future__ import annotations

import io
import lzma
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuro.errors import NeuroError

#: The split folders an image folder may hold.
SPLIT_NAMES = ("train", "test")

#: Suffixes of the archives read as tars (anything else must be a directory).
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2")


@dataclass
class Decoded:
    """Decoded data: ``splits[split] = (images uint8 (N, C, H, W), labels int64 (N,))``, and the classes."""

    classes: list[str]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]


def is_tar(path: Path) -> bool:
    return path.name.lower().endswith(TAR_SUFFIXES)


def read(path: Path) -> Decoded:
    """Decode the image folder (directory or tar) at ``path``; see the module docstring."""
    path = Path(path)
    if path.is_dir():
        entries = _dir_entries(path)
    elif path.is_file() and is_tar(path):
        entries = _tar_entries(path)
    else:
        raise NeuroError(f"image folder {path} is neither a directory nor a tar archive "
                         f"({', '.join(TAR_SUFFIXES)}): point it at a folder holding train/<class>/ images")
    found: dict[str, dict[str, list[tuple[str, np.ndarray]]]] = {}
    size = None
    try:
        for parts, data in entries:
            split, cls, rel = parts[0], parts[1] if len(parts) > 1 else None, "/".join(parts)
            if data is None:  # a directory: a class folder counts even while empty
                if len(parts) == 2:
                    found.setdefault(split, {}).setdefault(cls, [])
                continue
            if len(parts) == 2:
                raise NeuroError(f"{path}: {rel} is not inside a class folder; move it into "
                                 f"{split}/<class>/ or out of {split}/")
            image = decode_image(data(), path, rel)
            if size is None:
                size = image.shape
            elif image.shape[1:] != size[1:]:
                raise NeuroError(f"{path}: {rel} is {image.shape[2]}x{image.shape[1]} pixels but earlier images are "
                                 f"{size[2]}x{size[1]}; resize all images to one size")
            found.setdefault(split, {}).setdefault(cls, []).append((rel, image))
    except (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, OSError) as exc:
        if not is_tar(path):
            raise NeuroError(f"{path}: cannot read it ({_one_line(exc)}); check the files' permissions") from None
        raise NeuroError(f"{path}: truncated or corrupt archive ({_one_line(exc)}); re-download or re-create "
                         f"it") from None
    return _assemble(path, found)


def decode_image(data: bytes, source: Path, rel: str) -> np.ndarray:
    """One image file's pixels as uint8 (C, H, W): C = 1 for grayscale files, else 3 (RGB)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            gray = img.mode in ("1", "L", "I", "I;16", "F")
            pixels = np.asarray(img.convert("L" if gray else "RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise NeuroError(f"{source}: {rel} is not a readable image ({_one_line(exc)}); remove it from the "
                         f"class folder or replace it") from None
    return pixels[None] if gray else pixels.transpose(2, 0, 1)


def _dir_entries(root: Path):
    """``(parts, read)`` of everything under ``<root>/<split>/`` (read None for a directory), sorted."""
    for split in SPLIT_NAMES:
        base = root / split
        if not base.is_dir():
            continue
        for p in sorted(base.rglob("*")):
            rel = p.relative_to(root).parts
            if any(part.startswith(".") for part in rel):
                continue
            yield rel, (None if p.is_dir() else p.read_bytes)


def _tar_entries(path: Path):
    """``(parts, read)`` of a tar's members under ``[<top>/]<split>/`` (read None for a directory)."""
    for member, data in tar_members(path):
        parts = tuple(p for p in member.name.split("/") if p not in ("", "."))
        if len(parts) > 1 and parts[0] not in SPLIT_NAMES and parts[1] in SPLIT_NAMES:
            parts = parts[1:]  # one enclosing folder, e.g. mydata/train/cat/1.png
        if not parts or parts[0] not in SPLIT_NAMES or any(p.startswith(".") for p in parts):
            continue
        if member.isdir():
            yield parts, None
        elif member.isfile():
            yield parts, data


def tar_members(path: Path, wanted=lambda member: True):
    """``(member, read)`` of every member of a tar (any compression), in archive order.

    ``read()`` returns a regular file's bytes (call it before the next member). A truncated archive is
    an error wherever it is cut, also between members (tarfile alone would end early without a word):
    the archive must end with its all-zero end-of-archive block.
    """
    with tarfile.open(path, mode="r:*") as tar:
        for member in tar:
            yield member, (lambda m=member: _read_member(tar, m))
        tar.fileobj.seek(tar.offset)  # within the read buffer: no re-decompression
        block = tar.fileobj.read(tarfile.BLOCKSIZE)
        if len(block) < tarfile.BLOCKSIZE or any(block):
            raise EOFError(f"no valid tar header or end-of-archive block at byte {tar.offset}")


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    data = tar.extractfile(member).read()
    if len(data) != member.size:
        raise EOFError(f"{member.name} ends early")
    return data


def _assemble(path: Path, found: dict) -> Decoded:
    """Stack each split in (class, file) order after checking classes are the same in every split."""
    if not found:
        raise NeuroError(f"{path} holds no train/ or test/ folder; lay the images out as "
                         f"train/<class>/*.png and test/<class>/*.png")
    class_sets = {split: sorted(classes) for split, classes in found.items()}
    if len(class_sets) > 1 and class_sets["train"] != class_sets["test"]:
        only_train = sorted(set(class_sets["train"]) - set(class_sets["test"]))
        only_test = sorted(set(class_sets["test"]) - set(class_sets["train"]))
        raise NeuroError(f"{path}: train and test have different classes (only in train: "
                         f"{', '.join(only_train) or 'none'}; only in test: {', '.join(only_test) or 'none'}); "
                         f"give both splits the same class folders")
    classes = next(iter(class_sets.values()))
    for split, by_class in found.items():
        if empty := [c for c in classes if not by_class[c]]:
            raise NeuroError(f"{path}: {split}/{empty[0]} holds no images; add images or remove the folder")
    channels = max(image.shape[0] for by_class in found.values() for files in by_class.values()
                   for _, image in files)
    splits = {}
    for split in SPLIT_NAMES:
        if split not in found:
            continue
        images, labels = [], []
        for label, cls in enumerate(classes):
            for _, image in sorted(found[split][cls], key=lambda item: item[0]):
                images.append(np.broadcast_to(image, (channels, *image.shape[1:])))
                labels.append(label)
        splits[split] = (np.stack(images), np.asarray(labels, dtype=np.int64))
    return Decoded(classes, splits)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
