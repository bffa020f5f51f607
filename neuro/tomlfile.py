"""Reading TOML text (experiment files, chip coefficient files): tomllib, or tomli on Python 3.10."""

from __future__ import annotations

from neuro.errors import NeuroError


def parse_toml(text: str, path) -> dict:
    """TOML text as a dict; bad syntax is a one-line NeuroError naming ``path``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise NeuroError("reading TOML files needs Python 3.11, or on 3.10 the tomli package: "
                             "pip install tomli") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise NeuroError(f"{path} is not valid TOML ({e}): fix the syntax") from None
