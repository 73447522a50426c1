"""The service SDK under its former name: ``sts.client`` is :mod:`chain_sts_client`.

The SDK is its own distribution, ``chain-sts-client``. This package keeps existing imports
working: ``from sts.client import TokenVerifier`` gives the SDK's class, and every submodule
``sts.client.X`` (``sts.client.flask``, ``sts.client.verifier``, ...) *is* the module
``chain_sts_client.X``, the same object, imported when first asked for. So, as before,
``import sts.client`` loads neither Flask nor ``requests``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

import chain_sts_client
from chain_sts_client import *  # noqa: F403

__all__ = list(chain_sts_client.__all__)

_SDK = chain_sts_client.__name__
_PREFIX = __name__ + "."


class _SdkModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``sts.client.X`` as the module ``chain_sts_client.X`` itself (sys.modules then
    holds the one module object under both names)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if not fullname.startswith(_PREFIX):
            return None
        if importlib.util.find_spec(_SDK + "." + fullname[len(_PREFIX) :]) is None:
            return None
        return ModuleSpec(fullname, self)

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        module = importlib.import_module(_SDK + "." + spec.name[len(_PREFIX) :])
        spec.loader_state = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import machinery stamped the alias's spec on the module: give it back its own.
        alias = module.__spec__
        if alias is not None and isinstance(alias.loader_state, ModuleSpec):
            module.__spec__ = alias.loader_state


def __getattr__(name: str) -> ModuleType:
    """``sts.client.verifier`` and the like without importing them first, as before."""
    if importlib.util.find_spec(f"{_SDK}.{name}") is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return importlib.import_module(_PREFIX + name)


if not any(isinstance(finder, _SdkModules) for finder in sys.meta_path):
    sys.meta_path.append(_SdkModules())
