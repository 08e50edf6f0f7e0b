"""The build of the optional compiled core, `sts.crypto._native` (everything else about the
package is in pyproject.toml).

The core is a CPython extension compiled when the package is installed (`uv sync`,
`pip install .`, a wheel), never at run time.  It is optional: without a C compiler (or Python's
headers) the package installs without it and the pure-Python forms run with the same results;
`sts --version` says which is in use.
"""

from __future__ import annotations

import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CORE = os.path.join("src", "sts", "crypto")
# compiled as one unit: _native.c includes the others (see its header)
PARTS = ("native.c", "keys.c", "lines_json.c", "lines_text.c", "lines.c")
WARNINGS = ["-Wall", "-Wextra"]  # kept clean; scripts/test.sh builds with -Werror too


class BuildCore(build_ext):
    """Adds the warning flags for gcc and clang; says plainly when the core is left out."""

    def build_extension(self, ext: Extension) -> None:
        if self.compiler.compiler_type == "unix":
            ext.extra_compile_args = [*ext.extra_compile_args, *WARNINGS]
        try:
            super().build_extension(ext)
        except Exception as exc:  # no compiler, no headers, a failed compile or link
            self._drop_stale(ext)
            self.warn(f"sts: the compiled core was not built ({exc}); the pure-Python forms "
                      "will run (same results, slower)")

    def _drop_stale(self, ext: Extension) -> None:
        """An editable install keeps its build in the source tree: a failed rebuild must not
        leave the previous one there to be loaded."""
        if self.inplace or getattr(self, "editable_mode", False):
            stale = os.path.join(CORE, os.path.basename(self.get_ext_filename(ext.name)))
            if os.path.exists(stale):
                os.remove(stale)


setup(
    ext_modules=[
        Extension(
            "sts.crypto._native",
            sources=[os.path.join(CORE, "_native.c")],
            depends=[os.path.join(CORE, name) for name in PARTS],
            optional=True,
        )
    ],
    cmdclass={"build_ext": BuildCore},
)
