"""The optional compiled core (`native.c`, `keys.c`, `lines.c`), built with the system C
compiler, loaded by ctypes.

It holds the STA and MISTY1 rounds (single and many at once) and the line engine of
`sts generate` / `sts decode` (`lines.c`, driven by sts.engine.stream), with the SHA-256,
HMAC and DES it needs (`keys.c`).  Pure Python stays the reference and the fallback: without a
compiler, with STS_NATIVE=0, or if anything about the library looks wrong, everything runs its
Python form, with the same results (tests/engine/test_native.py and test_line_engine.py).

The library is built once per source version into a per-user cache directory (the virtual
environment's `var/sts-native/` when writable, else ~/.cache/sts) and loaded from there; the
`./run` bootstrap builds it ahead (`python -m sts.crypto.native`).  No Python headers and no
extra package are needed: the C functions take plain integers and pointers.
"""

from __future__ import annotations

import ctypes
import os
import sys

ENV_SWITCH = "STS_NATIVE"  # "0": never use the compiled core
ENV_DIR = "STS_NATIVE_DIR"  # where to build and find it (default: see _cache_dirs)
ABI = 2
# compiled as one unit, in this order (each file uses the ones before it)
SOURCES = ("native.c", "keys.c", "lines_json.c", "lines_text.c", "lines.c")

U64 = ctypes.c_uint64
PTR = ctypes.c_void_p


class Native:
    """The loaded library with typed entry points."""

    def __init__(self, lib: ctypes.CDLL, path: str) -> None:
        self.path = path
        self.sta_encrypt = lib.sts_sta_encrypt
        self.sta_encrypt.argtypes = [PTR, U64, U64]
        self.sta_encrypt.restype = U64
        self.sta_decrypt = lib.sts_sta_decrypt
        self.sta_decrypt.argtypes = [PTR, PTR, PTR, U64, U64]
        self.sta_decrypt.restype = U64
        self.sta_encrypt_many = lib.sts_sta_encrypt_many
        self.sta_encrypt_many.argtypes = [PTR, PTR, PTR, PTR, ctypes.c_size_t]
        self.sta_encrypt_many.restype = None
        self.sta_decrypt_many = lib.sts_sta_decrypt_many
        self.sta_decrypt_many.argtypes = [PTR, PTR, PTR, PTR, PTR, PTR, ctypes.c_size_t]
        self.sta_decrypt_many.restype = None
        self.misty1 = lib.sts_misty1
        self.misty1.argtypes = [PTR, PTR, ctypes.c_char_p, U64, ctypes.c_int]
        self.misty1.restype = U64
        self.misty1_many = lib.sts_misty1_many
        self.misty1_many.argtypes = [PTR, PTR, PTR, PTR, PTR, ctypes.c_size_t, ctypes.c_int]
        self.misty1_many.restype = None
        # the line engine (lines.c; see sts.engine.stream)
        self.lines_new = lib.sts_lines_new
        self.lines_new.argtypes = [PTR, PTR]
        self.lines_new.restype = PTR
        self.lines_free = lib.sts_lines_free
        self.lines_free.argtypes = [PTR]
        self.lines_free.restype = None
        self.lines_text = lib.sts_lines_text
        self.lines_text.argtypes = [PTR, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
        self.lines_text.restype = ctypes.c_int
        self.lines_table_set = lib.sts_lines_table_set
        self.lines_table_set.argtypes = [PTR, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                         ctypes.c_char_p, ctypes.c_char_p]
        self.lines_table_set.restype = ctypes.c_int
        self.lines_run = lib.sts_lines_run
        self.lines_run.argtypes = [PTR, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t,
                                   ctypes.c_size_t, PTR, ctypes.c_size_t, PTR, ctypes.c_size_t,
                                   ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int64, PTR]
        self.lines_run.restype = ctypes.c_int
        self.lines_needed = lib.sts_lines_needed
        self.lines_needed.argtypes = [PTR, PTR]
        self.lines_needed.restype = ctypes.c_size_t
        self.sha256_form = lib.sts_sha256_form  # 1: x86 SHA extensions; (1) forces portable
        self.sha256_form.argtypes = [ctypes.c_int]
        self.sha256_form.restype = ctypes.c_int


def _source() -> bytes:
    """The C files joined into one unit (read by path: no import machinery on the way to the
    first line of `sts generate`)."""
    here = os.path.dirname(os.path.abspath(__file__))
    parts = []
    for name in SOURCES:
        with open(os.path.join(here, name), "rb") as f:
            parts.append(b'#line 1 "%s"\n' % name.encode() + f.read())
    return b"\n".join(parts)


def _sha256_hex(data: bytes) -> str:
    try:  # the built-in module: hashlib (OpenSSL) costs milliseconds at every start
        from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from hashlib import sha256
    digest: str = sha256(data).hexdigest()
    return digest


def _library_name(source: bytes) -> str:
    tag = _sha256_hex(source + os.uname().machine.encode() + sys.platform.encode())
    return f"sts-native-{tag[:16]}.so"


def _cache_dirs() -> list[str]:
    chosen = os.environ.get(ENV_DIR)
    if chosen:
        return [chosen]
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                  ".cache")
    return [os.path.join(sys.prefix, "var", "sts-native"), os.path.join(cache_home, "sts")]


def _owned_private_dir(path: str) -> bool:
    """Only load code from a directory of ours that nobody else can write to."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _compiler() -> str | None:
    import shutil

    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def build(directory: str, source: bytes) -> str:
    """Compile the library into `directory` (atomically); raises on any failure."""
    import subprocess  # only when building: a plain start stays light
    import tempfile

    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler (cc, gcc or $CC)")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if not _owned_private_dir(directory):
        raise RuntimeError(f"{directory} is not a private directory of this user")
    name = _library_name(source)
    target = os.path.join(directory, name)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        c_file = os.path.join(tmp, "native.c")
        with open(c_file, "wb") as f:
            f.write(source)
        out = os.path.join(tmp, name)
        subprocess.run([cc, "-O2", "-shared", "-fPIC", "-std=c99", "-o", out, c_file],
                       check=True, capture_output=True, timeout=120)
        os.replace(out, target)
    return target


def _open(path: str) -> Native | None:
    try:
        lib = ctypes.CDLL(path)
        if lib.sts_native_abi() != ABI:
            return None
        return Native(lib, path)
    except (OSError, AttributeError):
        return None


def _load() -> Native | None:
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return None
    try:
        source = _source()
    except OSError:
        return None
    name = _library_name(source)
    dirs = _cache_dirs()
    for d in dirs:
        path = os.path.join(d, name)
        if os.path.isfile(path) and _owned_private_dir(d):
            found = _open(path)
            if found is not None:
                return found
    for d in dirs:
        try:
            return _open(build(d, source))
        except Exception:  # no compiler, a failed compile, an unwritable directory
            continue
    return None


_state: list[Native | None] = []


def native() -> Native | None:
    """The compiled core, or None (pure Python).  Loaded, and built if need be, on first use."""
    if not _state:
        _state.append(_load())
    return _state[0]


def main() -> int:
    """`python -m sts.crypto.native`: build (if need be) and report where the library is."""
    found = native()
    if found is None:
        reason = ("disabled by STS_NATIVE=0" if os.environ.get(ENV_SWITCH) == "0"
                  else "no C compiler, a failed build or no private cache directory")
        print(f"sts native cipher core: not available ({reason}); pure Python in use")
        return 0
    print(f"sts native cipher core: {found.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
