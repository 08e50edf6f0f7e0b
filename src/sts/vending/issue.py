"""Making tokens for a meter: which key change is due, TID allocation, and the issue itself.

Nothing here touches the database: `issue` takes the locked meter's view and returns the rows
to store (`IssueResult`); the caller stores them in the same transaction (`sts.vending.ledger`)
or throws them away.  An engine refusal (a token the meter would reject) raises before
anything is stored, so no TID is burnt and nothing is charged.

Key rule: a sale moves a meter to its SGC's current key, but never backwards.  A meter that an
engineer (or a campaign) moved to a key added after the current one stays on that newer key;
only an explicit engineering key change moves a meter to an older key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sts.codec.tid import TID_MAX, is_reserved, tid_at
from sts.engine import Issue, TokenRequest
from sts.errors import StsError, VendKeyExpired
from sts.vending.keys.security_module import KeyChangeItem, MeterIdentity, SecurityModule
from sts.vending.meters import KeyInfo, MeterView
from sts.vending.tariff import units_str


@dataclass(frozen=True)
class Planned:
    """One token to make: class, subclass, values; the TID is allocated at issue time."""

    kind: str  # STD / FBE / ENG / TEST
    token_class: int
    subclass: int
    values: dict[str, Any]
    units: Decimal | None = None
    label: str = ""


@dataclass(frozen=True)
class KeyChange:
    new_key: KeyInfo
    new_ti: int
    ro: bool

    def target(self) -> dict[str, Any]:
        k = self.new_key.record
        return {"sgc": k.sgc, "krn": k.krn, "ti": self.new_ti, "base_date": k.base_date}


@dataclass
class IssueResult:
    tokens: list[dict[str, Any]]  # rows for the token table (without txn_seq)
    key_id: int
    ti: int
    ken: int
    tid_epoch: int
    max_epoch: int
    last_tid: int
    prev_key: dict[str, Any] = field(default_factory=dict)

    def public(self) -> list[dict[str, Any]]:
        out = []
        for t in self.tokens:
            item: dict[str, Any] = {"token": t["token"], "class": t["token_class"],
                                    "subclass": t["subclass"], "tid": t["tid"],
                                    "kind": t["kind"], "description": t["description"]}
            if t["units"] is not None:
                item["units"] = units_str(t["units"])
            if t.get("label"):
                item["label"] = t["label"]
            out.append(item)
        return out


def next_tid(now_tid: int, last_tid: int) -> int:
    """The next free TID: this minute, or the minute after the last one used; never 00:01."""
    tid = max(now_tid, last_tid + 1)
    if is_reserved(tid):
        tid += 1
    if tid > TID_MAX:
        raise VendKeyExpired("the meter's TID range is used up: it needs a key change",
                             field="tid")
    return tid


def check_key_valid(key: KeyInfo, now: datetime, *, kct: bool = False) -> None:
    rec = key.record
    until = (rec.kct_until or rec.issued_until) if kct else rec.issued_until
    if until is not None and now > until:
        what = "key change tokens" if kct else "tokens"
        raise VendKeyExpired(
            f"vending key SGC {rec.sgc} KRN {rec.krn} may issue {what} only until "
            f"{until:%Y-%m-%d %H:%M}", field="meter")


def sale_target_key_id(m: MeterView) -> int:
    """The key a sale leaves the meter on: the SGC's current key, unless the meter holds a key
    of its SGC added after it (keys are ordered by when they were added)."""
    current = m.current_key_id
    if current is None or m.key.record.id > current:
        return m.key.record.id
    return current


def due_key_change(m: MeterView, load_key: Any) -> KeyChange | None:
    """The key change a sale must send first, or None.  `load_key(id)` reads another key."""
    target_id = sale_target_key_id(m)
    target_ti = m.tariff.ti if m.tariff.ti is not None else m.ti
    if target_id == m.key.record.id and target_ti == m.ti:
        return None
    new = m.key if target_id == m.key.record.id else load_key(target_id)
    return KeyChange(new, target_ti, new.record.base_date != m.key.record.base_date)


def key_change_identities(m: MeterView, kc: KeyChange) -> tuple[MeterIdentity, MeterIdentity]:
    """The meter's identity before and after the key change `kc`."""
    return m.identity(), MeterIdentity(m.pan, m.kt, kc.new_ti, kc.new_key.ken, m.mfr_code)


def key_change_item(m: MeterView, kc: KeyChange) -> KeyChangeItem:
    """What the security module needs to make `kc`'s set alone (no follow-up token)."""
    old, new = key_change_identities(m, kc)
    return KeyChangeItem(m.key.record, old, kc.new_key.record, new, kc.ro)


def issue(sm: SecurityModule, m: MeterView, planned: list[Planned], kc: KeyChange | None,
          now: datetime, *, made_set: Issue | StsError | None = None) -> IssueResult:
    """Allocate TIDs and make the tokens (KCTs first, then `planned` in order).  `now` is the
    utility's local wall time: TIDs count its minutes.  `made_set`: the key change set
    already made for `key_change_item(m, kc)` (or the error making it raised), for a key
    change alone (`SecurityModule.key_change_many`, campaigns); the checks run as before."""
    if made_set is not None and (kc is None or planned):
        raise ValueError("a made key change set stands only for a key change alone")
    prev_key = {"key_id": m.key.record.id, "ti": m.ti, "ken": m.ken,
                "tid_epoch": m.tid_epoch, "last_tid": m.last_tid}
    key, ti, ken = m.key, m.ti, m.ken
    epoch, last_tid, max_epoch = m.tid_epoch, m.last_tid, m.max_epoch
    rows: list[dict[str, Any]] = []

    def row(tok: Any, kind: str, key_id: int, ti_: int, ken_: int,
            units: Decimal | None, label: str) -> None:
        rows.append({"token": tok.token, "token_class": tok.token_class,
                     "subclass": tok.subclass, "tid": tok.tid, "tid_epoch": epoch,
                     "units": units, "kind": kind, "description": tok.description,
                     "key_id": key_id, "kt": m.kt, "ti": ti_, "ken": ken_, "label": label})

    def request(p: Planned) -> TokenRequest:
        nonlocal last_tid
        if p.token_class == 1:
            return TokenRequest(p.token_class, p.subclass, p.values)
        tid = next_tid(tid_at(now, key.record.base_date), last_tid)
        last_tid = tid
        return TokenRequest(p.token_class, p.subclass, p.values, tid=tid)

    queue = list(planned)
    if kc is not None:
        check_key_valid(m.key, now, kct=True)
        new_ken = kc.new_key.ken
        then = None
        kct_epoch = epoch
        if kc.ro:
            max_epoch += 1
            epoch, last_tid = max_epoch, 0
        key, ti, ken = kc.new_key, kc.new_ti, new_ken
        first = queue.pop(0) if queue else None
        if first is not None:
            if first.token_class != 1:
                check_key_valid(key, now)
            then = request(first)
        if isinstance(made_set, StsError):
            raise made_set
        if made_set is not None:
            made = made_set
        else:
            old_ident, new_ident = key_change_identities(m, kc)
            made = sm.key_change(m.key.record, old_ident, key.record, new_ident, ro=kc.ro,
                                 then=then)
        kcts = made.tokens[: len(made.tokens) - (1 if then is not None else 0)]
        for n, tok in enumerate(kcts, 1):
            row(tok, "KCT", m.key.record.id, m.ti, m.ken, None, f"KEY CHANGE TOKEN {n}")
            rows[-1]["tid_epoch"] = kct_epoch
        if first is not None:
            row(made.tokens[-1], first.kind, key.record.id, ti, ken, first.units, first.label)
    ident = MeterIdentity(m.pan, m.kt, ti, ken, m.mfr_code)
    for p in queue:
        if p.token_class != 1:
            check_key_valid(key, now)
        made = sm.issue(key.record, ident, request(p))
        row(made.tokens[0], p.kind, key.record.id, ti, ken, p.units, p.label)
    return IssueResult(rows, key.record.id, ti, ken, epoch, max_epoch, last_tid, prev_key)
