"""Optional packages: which tokenmill extra installs each, and one line naming it when one is missing.

A flag that needs an optional package (`--formats array_record`, a `gs://`
path) is checked while planning, so a missing package fails at once rather
than in a worker, minutes later, under a page of Beam traceback; a reader
module checks its framework when it is called.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from transforms.errors import ConfigError

# Import name -> (what pip installs, the tokenmill extra that brings it).
EXTRAS = {
    "array_record.python.array_record_module": ("array-record", "array_record"),
    "google.cloud.storage": ("apache-beam[gcp]", "gcp"),
    "datasets": ("datasets", "hf"),
    "tensorflow": ("tensorflow-cpu", "tf"),
    "torch": ("torch", "torch"),
    "torchdata": ("torchdata", "torch"),
    "grain": ("grain", "jax"),
    "jax": ("jax", "jax"),
}


class MissingExtra(ImportError, ConfigError):
    """An optional package is not installed; the message names the extra. An ImportError to code, a one-line error to the CLI."""


def import_extra(module: str, needed_for: str) -> ModuleType:
    """`module`, imported; `MissingExtra` naming the extra to install when it is not there."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        package, extra = EXTRAS[module]
        raise MissingExtra(f"{needed_for} needs {package}, which is not installed: pip install 'tokenmill[{extra}]' (in a checkout: pip install -e '.[{extra}]')") from e
