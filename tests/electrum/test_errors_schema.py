"""The one error mapping (every vending refusal has its ErrorType and a short message), and
migration 0003_electrum (after 0002) up and down on SQLite and PostgreSQL."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from sqlalchemy import inspect as sa_inspect

from sts import errors as e
from sts.electrum.errors import ERROR_MAP, classify
from sts.electrum.models import ErrorType, RequestType

TABLES = {"basic_credentials", "client_messages", "message_journal", "sale_advices",
          "fault_reports"}


def vending_errors() -> list[type[e.VendingError]]:
    return [c for _, c in inspect.getmembers(e, inspect.isclass)
            if issubclass(c, e.VendingError) and c is not e.VendingError]


@pytest.mark.parametrize("cls", vending_errors(), ids=lambda c: c.__name__)
def test_every_vending_refusal_has_its_own_error_type(cls: type[e.VendingError]) -> None:
    status, error_type, short, detail = classify(cls("why", field="f"),
                                                 RequestType.TOKEN_PURCHASE_REQUEST)
    assert error_type is not ErrorType.TRANSACTION_DECLINED, "falls through to the default"
    assert len(short) <= 20 and detail == {"code": cls.code, "message": "why", "field": "f"}
    assert status in (400, 401, 404, 503, 504)


def test_mapping_is_a_function_of_our_codes() -> None:
    seen: dict[type[Any], ErrorType] = {}
    for cls, error_type, _status, short in ERROR_MAP:
        assert cls not in seen
        seen[cls] = error_type
        assert 0 < len(short) <= 20
    unknown = classify(RuntimeError("boom"), RequestType.TOKEN_PURCHASE_REQUEST)
    assert unknown[:2] == (500, ErrorType.OUTCOME_UNKNOWN)  # a token may exist: retry
    lookup = classify(RuntimeError("boom"), RequestType.METER_LOOKUP_REQUEST)
    assert lookup[:2] == (500, ErrorType.GENERAL_ERROR) and "boom" not in str(lookup)
    not_found = e.UnknownRecord("x")
    assert classify(not_found, RequestType.CONFIRMATION_ADVICE)[0] == 404
    assert classify(not_found, RequestType.TOKEN_REPRINT_REQUEST)[0] == 400  # 404 undeclared


def test_migration_up_and_down(service: Any) -> None:
    from alembic import command
    from alembic.config import Config

    db = service.db
    with db.read() as conn:
        assert set(sa_inspect(conn).get_table_names()) >= TABLES
    cfg = Config()
    cfg.set_main_option("script_location", "sts.vending.storage:migrations")
    with db.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
    with db.read() as conn:
        names = set(sa_inspect(conn).get_table_names())
    assert not (TABLES & names) and "transactions" in names
    with db.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    with db.read() as conn:
        assert set(sa_inspect(conn).get_table_names()) >= TABLES
