"""What the module relies on from the token, checked on the real SoftHSM2: a zero-padded HMAC key
gives the same MAC as the 160-bit key, and the vending key objects the module makes cannot be
read out."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

import pytest
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11e

from sts.vending.keys.pkcs11 import blob_label
from tests.hsm.conftest import SoftHsm


@pytest.fixture
def module(softhsm: SoftHsm) -> Any:
    sm = softhsm.module()
    yield sm
    sm.close()


def test_zero_padded_hmac_key_gives_the_same_mac(module: Any) -> None:
    for _ in range(5):
        key = secrets.token_bytes(20)
        message = secrets.token_bytes(secrets.randbelow(80) + 1)

        def mac(session: Any, key: bytes = key, message: bytes = message) -> bytes:
            obj = session.create_object({
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.GENERIC_SECRET, Attribute.TOKEN: False,
                Attribute.VALUE: key.ljust(32, b"\0"), Attribute.SIGN: True})
            try:
                return bytes(obj.sign(message, mechanism=Mechanism.SHA256_HMAC))
            finally:
                obj.destroy()

        assert module._run("a MAC", mac) == hmac.digest(key, message, hashlib.sha256)


def test_module_keys_cannot_be_read_out(module: Any) -> None:
    blobs = [module.create_key(sgc="999970", krn=1, dkga=4),
             module.import_key(secrets.token_bytes(20), sgc="999970", krn=2, dkga=4)]

    def inspect(session: Any) -> list[dict[Attribute, Any]]:
        out = []
        for blob in blobs:
            obj = session.get_key(object_class=ObjectClass.SECRET_KEY, label=blob_label(blob))
            attrs = {a: obj[a] for a in (Attribute.SENSITIVE, Attribute.EXTRACTABLE,
                                         Attribute.TOKEN, Attribute.PRIVATE, Attribute.SIGN,
                                         Attribute.ENCRYPT, Attribute.DERIVE, Attribute.WRAP,
                                         Attribute.ALWAYS_SENSITIVE, Attribute.NEVER_EXTRACTABLE,
                                         Attribute.LOCAL)}
            with pytest.raises(p11e.AttributeSensitive):
                obj[Attribute.VALUE]
            out.append(attrs)
            obj.destroy()
        return out

    generated, imported = module._run("an inspection", inspect)
    for attrs in (generated, imported):
        assert attrs[Attribute.SENSITIVE] and not attrs[Attribute.EXTRACTABLE]
        assert attrs[Attribute.TOKEN] and attrs[Attribute.PRIVATE] and attrs[Attribute.SIGN]
        assert not (attrs[Attribute.ENCRYPT] or attrs[Attribute.DERIVE] or attrs[Attribute.WRAP])
    # generated inside: it never existed outside the token
    assert generated[Attribute.LOCAL] and generated[Attribute.ALWAYS_SENSITIVE]
    assert generated[Attribute.NEVER_EXTRACTABLE]
