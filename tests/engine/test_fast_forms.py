"""Every form of a cipher and every batch path agree: reference, table form, numpy form;
vectorised batch path and generic path on the known-answer vectors.

The random cases are seeded and run in one vectorised call each, so they stay cheap.
"""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest

from sts.crypto import misty1, misty1_batch
from sts.crypto.sta import sample_tables, table_set
from sts.crypto.sta_batch import batch_cipher
from sts.engine.batch import run_batch
from sts.engine.fast import decode_chunk, generate_chunk
from tests.conftest import load_vectors, sta_tables_file, vector_params

TABLES = sta_tables_file()


def _random_cases(seed: int, n: int) -> tuple[list[bytes], list[int]]:
    rng = random.Random(seed)
    keys = [rng.randbytes(16) for _ in range(n)]
    # edge blocks as well as random ones
    blocks = [rng.choice([0, (1 << 64) - 1, rng.getrandbits(64), 1 << rng.randrange(64)])
              for _ in range(n)]
    return keys, blocks


def _misty_batch(keys: list[bytes], blocks: list[int], *, decrypt: bool) -> list[int]:
    ek = misty1_batch.expand_keys(np.frombuffer(b"".join(keys), dtype=np.uint8)
                                  .reshape(-1, 16))
    run = misty1_batch.decrypt_numpy if decrypt else misty1_batch.encrypt_numpy
    out: list[int] = run(ek, np.array(blocks, dtype=np.uint64)).tolist()
    return out


def test_misty1_forms_agree_on_random_inputs() -> None:
    keys, blocks = _random_cases(11, 3000)
    want = [misty1.reference_encrypt(k, b) for k, b in zip(keys, blocks, strict=True)]
    assert [misty1.encrypt_py(k, b) for k, b in zip(keys, blocks, strict=True)] == want
    assert _misty_batch(keys, blocks, decrypt=False) == want
    back = [misty1.reference_decrypt(k, c) for k, c in zip(keys, want, strict=True)]
    assert back == blocks
    assert [misty1.decrypt_py(k, c) for k, c in zip(keys, want, strict=True)] == blocks
    assert _misty_batch(keys, want, decrypt=True) == blocks
    # the table form's FI is the reference FI for every input and a spread of subkeys
    fin, fout = misty1.fi_tables()
    rng = random.Random(3)
    for x in range(0, 1 << 16, 7):
        k = rng.getrandbits(16)
        assert fout[fin[x] ^ k] == misty1._fi(x, k)


def test_sta_forms_agree_on_random_inputs() -> None:
    cipher = sample_tables().cipher
    rng = random.Random(5)
    keys = [rng.getrandbits(64) for _ in range(2000)]
    blocks = [rng.getrandbits(64) for _ in range(2000)]
    want = [cipher.encrypt(k, b) for k, b in zip(keys, blocks, strict=True)]
    fast = batch_cipher(cipher)
    k_arr, b_arr = np.array(keys, dtype=np.uint64), np.array(blocks, dtype=np.uint64)
    assert fast.encrypt_numpy(k_arr, b_arr).tolist() == want
    assert fast.decrypt_numpy(k_arr, np.array(want, dtype=np.uint64)).tolist() == blocks
    assert [cipher.encrypt_py(k, b) for k, b in zip(keys, blocks, strict=True)] == want


@pytest.mark.parametrize("v", vector_params("cipher"))
def test_cipher_vectors_in_every_form(v: dict[str, Any]) -> None:
    inp = v["input"]
    key = bytes.fromhex(inp["key"])
    plain = int(inp["plaintext"], 16)
    want = int(v["expected"]["ciphertext"], 16)
    if inp["algorithm"] == "misty1":
        assert misty1.reference_encrypt(key, plain) == want
        assert misty1.reference_decrypt(key, want) == plain
        assert misty1.encrypt_py(key, plain) == want
        assert misty1.decrypt_py(key, want) == plain
        assert _misty_batch([key], [plain], decrypt=False) == [want]
        assert _misty_batch([key], [want], decrypt=True) == [plain]
    elif inp["algorithm"] == "sta":
        cipher = table_set(inp["table_set"], TABLES).cipher
        fast = batch_cipher(cipher)
        k = np.array([int.from_bytes(key, "big")], dtype=np.uint64)
        assert fast.encrypt_numpy(k, np.array([plain], dtype=np.uint64)).tolist() == [want]
        assert fast.decrypt_numpy(k, np.array([want], dtype=np.uint64)).tolist() == [plain]
        assert cipher.encrypt_py(int.from_bytes(key, "big"), plain) == want
        assert cipher.decrypt_py(int.from_bytes(key, "big"), want) == plain
    else:
        pytest.skip("DES has one form (the `cryptography` library)")


def _token_vectors() -> list[dict[str, Any]]:
    return [v for v in load_vectors("token") if v.get("meter") and "request" in v]


def test_token_vectors_through_both_batch_paths() -> None:
    """Every token vector as a batch line: fast and generic paths give the same line, and the
    fast path really takes the plain EA07 and EA11 credit vectors."""
    vectors = _token_vectors()
    if not vectors:
        pytest.skip("no vectors available")
    lines = [json.dumps({"id": v["id"], "meter": v["meter"], "request": v["request"]})
             for v in vectors]
    fast = list(run_batch(lines, "generate", TABLES))
    assert fast == list(run_batch(lines, "generate", TABLES, fast=False))
    objs = [(i, json.loads(x)) for i, x in enumerate(lines)]
    taken = generate_chunk(objs, TABLES, {})
    for pos, text in taken.items():
        expected = vectors[pos]["expected"]
        assert json.loads(text)["tokens"] == expected["tokens"], vectors[pos]["id"]
    assert {vectors[p]["meter"]["ea"] for p in taken} >= {7, 11}
    decode_lines = [json.dumps({"id": v["id"], "token": token, "meter": v["meter"]})
                    for v in vectors if "error" not in v["expected"]
                    and "key_change" not in v["request"]
                    for token in v["expected"]["tokens"][:1] if token is not None]
    fast_dec = list(run_batch(decode_lines, "decode", TABLES))
    assert fast_dec == list(run_batch(decode_lines, "decode", TABLES, fast=False))
    dec_objs = [(i, json.loads(x)) for i, x in enumerate(decode_lines)]
    dec_taken = decode_chunk(dec_objs, TABLES, {})
    assert {dec_objs[p][1]["meter"]["ea"] for p in dec_taken} >= {7, 11}
