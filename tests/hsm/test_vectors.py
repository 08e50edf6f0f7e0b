"""Every shared vector whose meter carries a vending key, derived inside the PKCS#11 token.

DKGA04: the token's CKM_SHA256_HMAC gives the vector's decoder key, and the tokens made with it
equal the vector's.  DKGA02: the token's DES step (CKM_DES3_ECB with K||K||K) equals single DES,
checked against the vector (DES(VK, X) = DK xor X xor VK); the module itself refuses to hold
DKGA02 keys, because the final 'xor VK' would hand the key to the host (docs).
"""

from __future__ import annotations

from typing import Any

import pytest

from sts.codec.pan import control_block, pan_block, parse_pan
from sts.engine import KeyChangeRequest, generate
from sts.engine.wire import meter_from_json, request_from_json
from sts.errors import NotSupported
from sts.vending.keys.security_module import KeyRecord, MeterIdentity
from tests.conftest import load_vectors, sta_tables_file
from tests.hsm.conftest import SoftHsm

TABLES = sta_tables_file()


def _with_key(dkga: int) -> list[Any]:
    out = [v for v in load_vectors("token")
           if isinstance(v.get("meter"), dict) and "vending_key" in v["meter"]
           and v["meter"]["dkga"] == dkga]
    if not out:
        return [pytest.param(None, marks=pytest.mark.skip(reason="no vectors available"))]
    return [pytest.param(v, id=str(v["id"])) for v in out]


@pytest.fixture(scope="module")
def module(softhsm: SoftHsm) -> Any:
    sm = softhsm.module(sta_tables=TABLES)
    yield sm
    sm.close()


_IMPORTED: dict[tuple[str, str, int], bytes] = {}


def _record(sm: Any, vk_hex: str, *, sgc: str, krn: int, ea: int, base_date: int,
            table_set: str | None) -> KeyRecord:
    blob = _IMPORTED.get((vk_hex, sgc, krn))
    if blob is None:
        blob = sm.import_key(bytes.fromhex(vk_hex), sgc=sgc, krn=krn, dkga=4)
        _IMPORTED[(vk_hex, sgc, krn)] = blob
    return KeyRecord(0, sgc, krn, "VUDK", 4, ea, base_date, table_set, "pkcs11", blob)


@pytest.mark.parametrize("v", _with_key(4))
def test_dkga04_inside_the_module(v: dict[str, Any], module: Any) -> None:
    m = v["meter"]
    rec = _record(module, m["vending_key"], sgc=m["sgc"], krn=m["krn"], ea=m["ea"],
                  base_date=m["base_date"], table_set=m.get("table_set"))
    ident = MeterIdentity(m["pan"], m["kt"], m["ti"], m.get("ken", 255), m.get("mfr_code"))
    derived = module.meter_key(rec, ident)
    assert derived.decoder_key.hex() == m["decoder_key"]
    expected = v["expected"]
    if "tokens" not in expected:
        return
    engine_meter = meter_from_json(m, tables_file=TABLES)
    request = request_from_json(v["request"], engine_meter, tables_file=TABLES)
    if isinstance(request, KeyChangeRequest):
        new = v["request"]["key_change"]["new_meter"]
        new_ea = new.get("ea", m["ea"])
        new_rec = _record(module, new.get("vending_key", m["vending_key"]),
                          sgc=new.get("sgc", m["sgc"]), krn=new.get("krn", m["krn"]),
                          ea=new_ea, base_date=new.get("base_date", m["base_date"]),
                          table_set=new.get("table_set", m.get("table_set")) if new_ea == 7
                          else None)
        new_ident = MeterIdentity(m["pan"], new.get("kt", m["kt"]), new.get("ti", m["ti"]),
                                  request.new_key.ken, m.get("mfr_code"))
        target = module.meter_key(new_rec, new_ident)
        assert target.decoder_key.hex() == new["decoder_key"]
        if request.third_token:  # the service never asks for a third KCT: the engine does
            issue = generate(module.meter_key(rec, ident),
                             KeyChangeRequest(target, request.ro, True, request.then))
        else:
            issue = module.key_change(rec, ident, new_rec, new_ident, ro=request.ro,
                                      then=request.then)
    else:
        issue = module.issue(rec, ident, request)
    got = [t.token for t in issue.tokens]
    assert len(got) == len(expected["tokens"])
    for token, want in zip(got, expected["tokens"], strict=True):
        if want is not None:
            assert token == want


@pytest.mark.parametrize("v", _with_key(2))
def test_dkga02_des_step_inside_the_module(v: dict[str, Any], module: Any) -> None:
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

    m = v["meter"]
    vk = bytes.fromhex(m["vending_key"])
    x = pan_block(parse_pan(m["pan"]), m["kt"]) ^ control_block(m["kt"], m["sgc"], m["ti"],
                                                                  m["krn"])
    want = int(m["decoder_key"], 16) ^ x ^ int.from_bytes(vk, "big")

    def des_step(session: Any) -> bytes:
        key = session.create_object({
            Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.DES3,
            Attribute.VALUE: vk * 3, Attribute.TOKEN: False, Attribute.ENCRYPT: True,
            Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False})
        try:
            return bytes(key.encrypt(x.to_bytes(8, "big"), mechanism=Mechanism.DES3_ECB))
        finally:
            key.destroy()

    assert int.from_bytes(module._run("a DES check", des_step), "big") == want
    with pytest.raises(NotSupported) as info:
        module.import_key(vk, sgc=m["sgc"], krn=m["krn"], dkga=2)
    assert info.value.field == "dkga"
