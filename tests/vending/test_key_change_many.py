"""`SoftwareSecurityModule.key_change_many` (the chunk at once) gives, meter by meter, what
`key_change` gives: the same set, or the same error; the default loop of the base class is
the reference (a PKCS#11 module uses it as it is)."""

from __future__ import annotations

import os
import random
from typing import Any

import pytest

from sts.codec.pan import MeterPan, luhn_check_digit
from sts.errors import StsError
from sts.vending.keys.security_module import (
    KeyChangeItem,
    KeyRecord,
    MeterIdentity,
    SecurityModule,
)
from sts.vending.keys.software import SoftwareSecurityModule

SM = SoftwareSecurityModule(os.urandom(32))


def _key(rng: random.Random, ident: int, *, dkga: int, ea: int, krn: int,
         module: str = "software") -> KeyRecord:
    sgc = f"{rng.randrange(10**6):06d}"
    raw = rng.randbytes(8 if dkga == 2 else 20)
    blob = SM.import_key(raw, sgc=sgc, krn=krn, dkga=dkga)
    return KeyRecord(id=ident, sgc=sgc, krn=krn, key_type="DUTK", dkga=dkga, ea=ea,
                     base_date=rng.choice((1993, 2014)), table_set=None, module=module,
                     blob=blob)


def _pan(rng: random.Random, *, valid: bool = True) -> str:
    body = f"{rng.randrange(10**10):010d}"
    pan = MeterPan.from_drn(body + str(luhn_check_digit(body))).pan
    return pan if valid else pan[:-1] + str((int(pan[-1]) + 1) % 10)


def _outcome(x: Any) -> Any:
    if isinstance(x, StsError):
        return (type(x).__name__, x.code, x.message, x.field)
    return x


@pytest.mark.parametrize("seed", range(6))
def test_chunk_equals_one_by_one(seed: int) -> None:
    rng = random.Random(seed)
    keys = [_key(rng, 1, dkga=2, ea=7, krn=1), _key(rng, 2, dkga=4, ea=7, krn=2),
            _key(rng, 3, dkga=4, ea=11, krn=3), _key(rng, 4, dkga=4, ea=11, krn=4)]
    foreign = _key(rng, 5, dkga=4, ea=7, krn=5, module="pkcs11")
    items = []
    for _ in range(60):
        wide = rng.random() < 0.3
        old, new = rng.sample(keys[2:] if wide else keys[:2], 2)
        kt = rng.choice((0, 1, 2, 2, 2, 3))
        odd = rng.random()
        pan = _pan(rng, valid=odd > 0.05)
        ti, new_ti = rng.randrange(100), rng.randrange(100)
        if 0.05 < odd < 0.08:
            new_ti = 100  # out of range: the generic path's error
        if 0.08 < odd < 0.11:
            new = keys[2]  # a 64-bit key to a 128-bit one (or 128 to 128)
        if 0.11 < odd < 0.13:
            old = foreign  # a key this module does not hold
        items.append(KeyChangeItem(old, MeterIdentity(pan, kt, ti, rng.randrange(256)), new,
                                   MeterIdentity(pan, kt, new_ti, rng.randrange(256)),
                                   rng.random() < 0.5))
    pan = _pan(rng)
    bad = [KeyChangeItem(keys[0], MeterIdentity(_pan(rng, valid=False), 2, 1), keys[1],
                         MeterIdentity(pan, 2, 1), True),
           KeyChangeItem(keys[0], MeterIdentity(pan, 2, 1), keys[1], MeterIdentity(pan, 2, 100),
                         True),
           KeyChangeItem(keys[1], MeterIdentity(pan, 2, 1), keys[2], MeterIdentity(pan, 2, 1),
                         False),
           KeyChangeItem(foreign, MeterIdentity(pan, 2, 1), keys[1], MeterIdentity(pan, 2, 1),
                         False)]
    items[10:10] = bad
    fast = SM.key_change_many(items)
    slow = SecurityModule.key_change_many(SM, items)
    assert len(fast) == len(slow) == len(items)
    assert [_outcome(x) for x in fast] == [_outcome(x) for x in slow]
    assert all(isinstance(x, StsError) for x in slow[10:14])
