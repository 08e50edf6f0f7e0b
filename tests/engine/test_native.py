"""The compiled core (`sts.crypto._native`, loaded by `sts.crypto.native`) against the Python
forms it ports and the libraries it stands in for.

Byte-identical on random keys and blocks (edge values included), single calls and batches;
its SHA-256, HMAC-SHA-256 and DES equal to hashlib and `cryptography` on random inputs; every
known-answer vector runs through the pure-Python forms as well as the default path (the
compiled core when it is built).  Its interface refuses bad arguments with Python errors.
Under CI the core must be built (installing the package builds it) unless STS_NATIVE=0 says
otherwise.  scripts/test.sh runs this file again on a build with AddressSanitizer and UBSan.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import subprocess
import sys
from array import array
from collections.abc import Iterator
from importlib.metadata import version
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import sts.crypto
from sts.crypto import misty1, misty1_batch
from sts.crypto import native as native_mod
from sts.crypto.sta import sample_tables, table_set
from sts.crypto.sta_batch import batch_cipher
from sts.engine import decode, generate
from sts.engine.batch import run_batch
from sts.engine.wire import meter_from_json, request_from_json
from tests.conftest import IN_CI, load_vectors, sta_tables_file

TABLES = sta_tables_file()
MAX64 = (1 << 64) - 1


@pytest.fixture
def nat() -> ModuleType:
    found = native_mod.native()
    if found is None:
        if IN_CI and os.environ.get(native_mod.ENV_SWITCH) != "0":
            pytest.fail("the compiled cipher core did not build (C compiler missing?)")
        pytest.skip("compiled cipher core not available")
    return found


@pytest.fixture
def pure_python(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(native_mod, "_state", [None])
    yield


def _cases(seed: int, n: int) -> tuple[list[int], list[int]]:
    rng = random.Random(seed)
    pick = [0, MAX64, 1, 1 << 63]
    keys = [rng.choice(pick) if rng.random() < 0.05 else rng.getrandbits(64) for _ in range(n)]
    blocks = [rng.choice(pick) if rng.random() < 0.05 else rng.getrandbits(64) for _ in range(n)]
    return keys, blocks


@pytest.mark.usefixtures("nat")
def test_sta_native_equals_python() -> None:
    cipher = sample_tables().cipher
    keys, blocks = _cases(1, 3000)
    want = [cipher.encrypt_py(k, b) for k, b in zip(keys, blocks, strict=True)]
    assert [cipher.encrypt(k, b) for k, b in zip(keys, blocks, strict=True)] == want
    assert [cipher.decrypt(k, c) for k, c in zip(keys, want, strict=True)] == blocks
    assert [cipher.decryptor(k)(c) for k, c in zip(keys, want, strict=True)] == blocks
    assert [cipher.decrypt_py(k, c) for k, c in zip(keys, want, strict=True)] == blocks
    fast = batch_cipher(cipher)
    k_arr, b_arr = np.array(keys, dtype=np.uint64), np.array(blocks, dtype=np.uint64)
    assert fast.encrypt(k_arr, b_arr).tolist() == want
    assert fast.decrypt(k_arr, np.array(want, dtype=np.uint64)).tolist() == blocks
    assert fast.encrypt(k_arr[:0], b_arr[:0]).tolist() == []


@pytest.mark.usefixtures("nat")
def test_misty1_native_equals_python() -> None:
    rng = random.Random(2)
    keys = [rng.choice([bytes(16), b"\xff" * 16]) if rng.random() < 0.05 else rng.randbytes(16)
            for _ in range(3000)]
    _, blocks = _cases(3, 3000)
    want = [misty1.encrypt_py(k, b) for k, b in zip(keys, blocks, strict=True)]
    assert [misty1.encrypt(k, b) for k, b in zip(keys, blocks, strict=True)] == want
    assert [misty1.decrypt(k, c) for k, c in zip(keys, want, strict=True)] == blocks
    k_arr = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(-1, 16)
    assert misty1_batch.crypt(k_arr, np.array(blocks, dtype=np.uint64), decrypt=False).tolist() == want
    assert misty1_batch.crypt(k_arr, np.array(want, dtype=np.uint64), decrypt=True).tolist() == blocks
    with pytest.raises(ValueError):
        misty1_batch.crypt(k_arr[:2], np.zeros(3, dtype=np.uint64), decrypt=False)


@pytest.mark.usefixtures("nat")
def test_bad_sizes_take_the_python_checks() -> None:
    """Out-of-range values never reach C: the Python form answers (or raises) as before."""
    with pytest.raises(ValueError):
        misty1.encrypt(b"short", 1)
    cipher = sample_tables().cipher
    assert cipher.encrypt(1 << 64, 5) == cipher.encrypt_py(1 << 64, 5)


def _token_vectors() -> list[dict[str, Any]]:
    return [v for v in load_vectors("token") if v.get("meter") and "error" not in v["expected"]]


@pytest.mark.usefixtures("pure_python")
def test_token_vectors_in_pure_python() -> None:
    """Every token vector, both directions, with the compiled core switched off."""
    assert native_mod.native() is None
    vectors = _token_vectors()
    if not vectors:
        pytest.skip("no vectors available")
    for v in vectors:
        meter = meter_from_json(v["meter"], tables_file=TABLES)
        issue = generate(meter, request_from_json(v["request"], meter, tables_file=TABLES))
        for got, want in zip(issue.tokens, v["expected"]["tokens"], strict=True):
            if want is not None:
                assert got.token == want, v["id"]
        first = v["expected"]["tokens"][0]
        if first is not None and "key_change" not in v["request"]:
            assert f"{decode(first, meter).block:016x}" == v["expected"]["blocks"][0], v["id"]
    lines = [json.dumps({"id": v["id"], "meter": v["meter"], "request": v["request"]})
             for v in vectors]
    assert list(run_batch(lines, "generate", TABLES)) == list(
        run_batch(lines, "generate", TABLES, fast=False))


def test_sta_tables_from_a_file_need_no_rebuild(nat: ModuleType) -> None:
    """The C core takes its tables from the caller: another table set just works."""
    if TABLES is None:
        pytest.skip("no table file")
    cipher = table_set("production", TABLES).cipher
    keys, blocks = _cases(4, 200)
    assert [cipher.encrypt(k, b) for k, b in zip(keys, blocks, strict=True)] == [
        cipher.encrypt_py(k, b) for k, b in zip(keys, blocks, strict=True)]


# --- the primitives of the line engine against the libraries ---------------------------------


def _des_reference(key: int, block: int) -> int:
    from sts.crypto import des

    return des.encrypt(key.to_bytes(8, "big"), block)


@pytest.mark.parametrize("portable", [True, False])
def test_sha256_and_hmac_equal_hashlib(nat: ModuleType, portable: bool) -> None:
    """Every length around the block and padding edges (55, 56, 63, 64, ...), random bytes;
    both SHA-256 forms (the processor's SHA extensions when it has them)."""
    nat.sha256_form(portable)
    try:
        rng = random.Random(20 + portable)
        for n in [*range(0, 200), 447, 448, 511, 512, 4096, 100_000]:
            data = rng.randbytes(n)
            assert nat.sha256(data) == hashlib.sha256(data).digest(), n
        for _ in range(1500):
            key = rng.randbytes(rng.choice([0, 1, 8, 16, 20, 32, 55, 56, 63, 64, rng.randrange(65)]))
            msg = rng.randbytes(rng.choice([0, 1, 45, 55, 56, 64, rng.randrange(300)]))
            assert nat.hmac_sha256(key, msg) == hmac.digest(key, msg, "sha256"), (key, msg)
    finally:
        nat.sha256_form(False)


def test_des_equals_cryptography(nat: ModuleType) -> None:
    keys, blocks = _cases(5, 2000)
    assert [nat.des_encrypt(k, b) for k, b in zip(keys, blocks, strict=True)] == [
        _des_reference(k, b) for k, b in zip(keys, blocks, strict=True)]


# --- the interface refuses what it cannot take --------------------------------------------------


def test_bad_arguments_raise(nat: ModuleType) -> None:
    t = sample_tables()
    sta = nat.StaTables(bytes(t.s1), bytes(t.s2), bytes(t.p))
    for bad in ((-1, 0), (1 << 64, 0), (0, "1"), (0, 1.0)):
        with pytest.raises((OverflowError, TypeError)):
            sta.encrypt(*bad)
    with pytest.raises(TypeError):
        sta.encrypt(1)
    with pytest.raises(ValueError, match="permutations"):
        nat.StaTables(bytes(t.s1[:15]) + b"\x00", bytes(t.s2), bytes(t.p))
    with pytest.raises(ValueError):
        nat.StaTables(bytes(t.s1), bytes(t.s2), bytes(t.p[:63]))
    keys, blocks, out = array("Q", [1, 2]), array("Q", [3, 4]), array("Q", [0])
    with pytest.raises(ValueError, match="out"):
        sta.encrypt_many(keys, blocks, out)
    with pytest.raises(BufferError):
        sta.encrypt_many(keys, blocks, b"\x00" * 16)  # not writable
    s7, s9 = array("H", misty1.S7), array("H", misty1.S9)
    with pytest.raises(ValueError):
        nat.Misty1(s7[:127], s9)
    cipher = nat.Misty1(s7, s9)
    with pytest.raises(ValueError, match="key"):
        cipher.encrypt(b"short", 1)
    assert cipher.encrypt(bytearray(16), 1) == misty1.encrypt_py(bytes(16), 1)
    with pytest.raises(ValueError, match="keys"):
        cipher.crypt_many(bytes(17), array("Q", [1]), array("Q", [0]), False)
    with pytest.raises(ValueError, match="64 bytes"):
        nat.hmac_sha256(bytes(65), b"")
    engine = nat.LineEngine(s7, s9)
    backs = array("q", bytes(32 * 4))
    line = b'{"id":1}\n'
    for args in ((False, line, 0, 99, bytearray(4096), backs, b"", 1),  # beyond the block
                 (False, line, 5, 2, bytearray(4096), backs, b"", 1),
                 (False, line, 0, len(line), bytearray(0), backs, b"", 1),  # no room
                 (False, line, 0, len(line), bytearray(4096), array("q", [0] * 3), b"", 1),
                 (False, line, 0, len(line), bytes(4096), backs, b"", 1)):
        with pytest.raises((ValueError, BufferError)):
            engine.run(*args)
    with pytest.raises(TypeError):
        engine.table_set(b"x", "tables")
    with pytest.raises(ValueError):
        engine.text(4, b"")
    for i in range(16):
        engine.table_set(b"set%d" % i, None)
    with pytest.raises(ValueError, match="room"):
        engine.table_set(b"one more", None)


# --- which form runs, and saying so ----------------------------------------------------------


def _version(**env: str) -> str:
    run = subprocess.run([sys.executable, "-c", "from sts.cli import main; main(['--version'])"],
                         capture_output=True, text=True, env={**os.environ, **env}, check=False)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_version_says_which_form_runs(nat: ModuleType) -> None:
    v = version("sts")
    assert _version() == f"sts {v} (compiled core: yes)"
    assert _version(STS_NATIVE="0") == f"sts {v} (compiled core: no — disabled by STS_NATIVE=0)"


def test_a_module_asked_for_by_path_must_load(tmp_path: Any) -> None:
    """The sanitizer run names its build by path: a bad path is an error, not pure Python."""
    code = "from sts.crypto.native import native; native()"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, native_mod.ENV_MODULE: str(tmp_path / "none.so")},
                         check=False)
    assert run.returncode != 0 and "none.so" in run.stderr


def test_without_the_module_python_runs_and_says_why(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Any) -> None:
    """A package installed without a compiler has no `_native`: pure Python, and the reason."""
    monkeypatch.setattr(native_mod, "_state", [])
    monkeypatch.setattr(native_mod, "_reason", [])
    monkeypatch.delenv(native_mod.ENV_MODULE, raising=False)
    monkeypatch.delitem(sys.modules, "sts.crypto._native", raising=False)
    monkeypatch.delattr(sts.crypto, "_native", raising=False)
    monkeypatch.setattr(sts.crypto, "__path__", [str(tmp_path)])  # a package without the file
    assert native_mod.native() is None
    assert native_mod.describe().startswith("compiled core: no — not built when sts was installed")
    cipher = sample_tables().cipher
    assert cipher.encrypt(5, 7) == cipher.encrypt_py(5, 7)
