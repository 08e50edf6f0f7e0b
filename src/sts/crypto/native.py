"""The optional compiled core: the extension module `sts.crypto._native` (`_native.c`).

It holds the STA and MISTY1 rounds (single and many at once) and the line engine of
`sts generate` / `sts decode` (`lines.c`, driven by sts.engine.stream), with the SHA-256, HMAC
and DES it needs (`keys.c`).  setup.py builds it when the package is installed; nothing is
compiled at run time.  Pure Python stays the reference and the fallback: when the module was
not built (no C compiler at install time), with STS_NATIVE=0, or when the module found is not
the one this code was written for, everything runs its Python form with the same results
(tests/engine/test_native.py and test_line_engine.py).

`sts --version` and the start line of `sts serve` say which is in use (`describe()`).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing is not loaded on the way to the first line of `sts generate`
if TYPE_CHECKING:
    from types import ModuleType

ENV_SWITCH = "STS_NATIVE"  # "0": never use the compiled core
# the file of a separately built copy of the module to load instead (the test command's
# sanitizer build); a failure to load it is an error, never a quiet fall-back to Python
ENV_MODULE = "STS_NATIVE_MODULE"
INTERFACE = 3  # _native.c: INTERFACE

_state: list[ModuleType | None] = []
_reason: list[str] = []


def _from_file(path: str) -> ModuleType:
    import sys
    from importlib.machinery import ExtensionFileLoader
    from importlib.util import module_from_spec, spec_from_loader

    loader = ExtensionFileLoader("sts.crypto._native", path)
    spec = spec_from_loader("sts.crypto._native", loader)
    if spec is None:
        raise RuntimeError(f"{ENV_MODULE}={path} is not a loadable module")
    module = module_from_spec(spec)
    loader.exec_module(module)
    sys.modules["sts.crypto._native"] = module
    return module


def _load() -> tuple[ModuleType | None, str]:
    """The module, or None with the reason."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return None, f"disabled by {ENV_SWITCH}=0"
    chosen = os.environ.get(ENV_MODULE)
    if chosen:
        module = _from_file(chosen)
    else:
        try:
            import sts.crypto._native as module
        except ModuleNotFoundError as exc:
            if exc.name != "sts.crypto._native":
                raise
            return None, ("not built when sts was installed (no C compiler then?); install "
                          "again with one, e.g. `uv sync --reinstall-package sts`")
        except ImportError as exc:  # a file that does not load on this system
            return None, f"the built module does not load ({exc})"
    if module.INTERFACE != INTERFACE:
        if chosen:
            raise RuntimeError(f"{ENV_MODULE}={chosen} has interface {module.INTERFACE}, "
                               f"not {INTERFACE}")
        return None, (f"the built module is stale (interface {module.INTERFACE}, not "
                      f"{INTERFACE}); install again: `uv sync --reinstall-package sts`")
    return module, f"{module.__file__}"


def native() -> ModuleType | None:
    """The compiled core, or None (pure Python).  Loaded once, on first use."""
    if not _state:
        module, reason = _load()
        _state.append(module)
        _reason.append(reason)
    return _state[0]


def describe() -> str:
    """`compiled core: yes` or `compiled core: no — why`, for `sts --version` and the server's
    start line."""
    if native() is not None:
        return "compiled core: yes"
    return f"compiled core: no — {_reason[0] if _reason else 'switched off'}"


def where() -> str:
    """The file of the loaded module, or why there is none."""
    native()
    return _reason[0] if _reason else "switched off"
