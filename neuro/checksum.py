"""A sha256 over the content of an HDF5 group, stored in the group's ``sha256`` attribute and checked on read.

The digest covers, in a canonical order (paths sorted), every member's path and kind, every attribute's name
and value and every dataset's dtype, shape and bytes, so one flipped byte of a stored number or attribute
changes it. Groups written before digests existed have no ``sha256`` attribute and are taken as they are.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import h5py

ATTR = "sha256"


def digest(group: h5py.Group) -> str:
    """The sha256 of ``group``'s content (its own ``sha256`` attribute left out)."""
    import h5py   # here, not at import: `neuro chips` imports this module (via neuro.snn) and stays fast

    h = hashlib.sha256()
    _hash_attrs(h, group, skip=ATTR)
    names = []
    group.visit(names.append)
    for name in sorted(names):
        item = group[name]
        is_dataset = isinstance(item, h5py.Dataset)
        h.update(_bytes(f"{'dataset' if is_dataset else 'group'} {name}"))
        _hash_attrs(h, item)
        if is_dataset:
            h.update(_bytes(item[()]))
    return h.hexdigest()


def sign(group: h5py.Group) -> None:
    """Store the digest of ``group``'s content in its ``sha256`` attribute."""
    group.attrs[ATTR] = digest(group)


def intact(group: h5py.Group) -> bool:
    """False when ``group`` carries a digest that its content no longer matches (or cannot be read at all)."""
    try:
        stored = group.attrs.get(ATTR)
        return stored is None or stored == digest(group)
    except (OSError, KeyError, ValueError, RuntimeError):  # damage h5py notices itself while reading
        return False


def _hash_attrs(h, obj, skip: str | None = None) -> None:
    for key in sorted(obj.attrs):
        if key != skip:
            h.update(_bytes(key))
            h.update(_bytes(obj.attrs[key]))


def _bytes(value) -> bytes:
    """Canonical bytes of a stored value: strings as UTF-8, arrays as dtype, shape and data, all length-prefixed."""
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"s%d:" % len(value) + value
    a = np.asarray(value)
    if a.dtype.kind == "O":  # variable-length strings
        return b"o%r:" % (a.shape,) + b"".join(_bytes(v) for v in a.flat)
    return b"a%s%r:" % (a.dtype.str.encode(), a.shape) + np.ascontiguousarray(a).tobytes()
