"""Every public name of the 0.1 layout is still importable from its old module path."""

from __future__ import annotations

import importlib
import json
import warnings
from pathlib import Path

import pytest

import yolo2retina
from yolo2retina._moved import MOVED

SNAPSHOT = json.loads((Path(__file__).parent / "public_api_0.1.json").read_text())


@pytest.mark.parametrize("module", sorted(SNAPSHOT))
def test_old_public_names_still_resolve(module: str) -> None:
    """Each name in a 0.1 module's ``__all__`` resolves from that module path (an old path
    that moved warns with DeprecationWarning and gives the new module's object)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        mod = importlib.import_module(module)
        missing = [n for n in SNAPSHOT[module] if not hasattr(mod, n)]
    assert not missing, f"{module}: names gone without an alias: {missing}"


@pytest.mark.parametrize("old", sorted(MOVED))
def test_a_moved_module_warns_and_gives_the_same_objects(old: str) -> None:
    import sys

    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match="moved to"):
        mod = importlib.import_module(old)
    targets = [importlib.import_module(t) for t in MOVED[old]]
    for name in SNAPSHOT.get(old, []):
        owner = next(t for t in targets if hasattr(t, name))
        assert getattr(mod, name) is getattr(owner, name)
    with pytest.raises(AttributeError, match="no attribute"):
        _ = mod.no_such_name


def test_top_level_names_are_functions_not_modules() -> None:
    """``from yolo2retina import X`` never gives a module (a function named like its module
    used to lose to the module)."""
    import types

    for name in yolo2retina.__all__:
        assert not isinstance(getattr(yolo2retina, name), types.ModuleType), name
