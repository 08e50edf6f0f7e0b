"""The compiled cipher core (`sts.crypto.native`) against the Python forms it ports.

Byte-identical on random keys and blocks (edge values included), single calls and batches,
and every known-answer vector runs through the pure-Python forms as well as the default path
(the compiled core when it is built).  Under CI the core must build (the README's two
commands build it on a fresh machine) unless STS_NATIVE=0 says otherwise.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

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
def nat() -> native_mod.Native:
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


def test_sta_tables_from_a_file_need_no_rebuild(nat: native_mod.Native) -> None:
    """The C core takes its tables from the caller: another table set just works."""
    if TABLES is None:
        pytest.skip("no table file")
    cipher = table_set("production", TABLES).cipher
    keys, blocks = _cases(4, 200)
    assert [cipher.encrypt(k, b) for k, b in zip(keys, blocks, strict=True)] == [
        cipher.encrypt_py(k, b) for k, b in zip(keys, blocks, strict=True)]
