"""Your own tasks and strategies from the command line: ``path/to/file.py:Name`` or
``package.module:Name``. The file is the user's own code, imported like any module (a config
file never is: configs are data)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

__all__ = ["is_reference", "load_object"]


def is_reference(text: str) -> bool:
    return ":" in text and not text.startswith(":") and not text.endswith(":")


def load_object(reference: str, what: str) -> Any:
    """The object named by ``reference`` (``file.py:Name`` or ``module:Name``)."""
    where, _, attr = reference.rpartition(":")
    if not where or not attr.isidentifier():
        raise ValueError(f"{what} {reference!r}: expected path/to/file.py:Name or package.module:Name.")
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise ValueError(f"{what} {reference!r}: no such file {str(path)!r}.")
        name = "cyclr_plugin_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ValueError(f"{what} {reference!r}: {str(path)!r} is not a Python file.")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
    else:
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as err:
            raise ValueError(f"{what} {reference!r}: no module {where!r} ({err}).") from err
    if not hasattr(module, attr):
        names = sorted(n for n in vars(module) if not n.startswith("_"))
        raise ValueError(f"{what} {reference!r}: {where} has no {attr!r}; it defines {', '.join(names) or 'nothing'}.")
    return getattr(module, attr)
