"""/metrics: who may scrape it, and counters that add up to the sales made while it is scraped
(threads selling through the app while another thread scrapes), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.ops.helpers import samples, total, value

TOKEN = "scrape-token-" + uuid.uuid4().hex


def test_only_admins_auditors_and_the_scrape_token_may_scrape(demo: Any) -> None:
    from sts.server.app import create_app

    client = TestClient(create_app(demo.service, metrics_token=TOKEN),
                        raise_server_exceptions=False)
    assert client.get("/metrics").status_code == 401
    for role in ("vendor", "supervisor", "engineer"):
        answer = client.get("/metrics", headers=demo.h(role))
        assert answer.status_code == 403 and answer.json()["code"] == "NOT_AUTHORISED"
    assert client.get("/metrics", headers={"Authorization": "Bearer not-the-token"}
                      ).status_code == 401
    for headers in (demo.h("admin"), demo.h("auditor"), {"Authorization": f"Bearer {TOKEN}"}):
        answer = client.get("/metrics", headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/plain")
        assert "sts_database_up 1.0" in answer.text


def test_scrape_token_from_a_private_file_only(tmp_path: Any, monkeypatch: Any) -> None:
    from sts.errors import ConfigError
    from sts.server.metrics import scrape_token_from_env

    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o644)
    monkeypatch.delenv("STS_METRICS_TOKEN", raising=False)
    monkeypatch.setenv("STS_METRICS_TOKEN_FILE", str(path))
    with pytest.raises(ConfigError, match="chmod 600"):
        scrape_token_from_env()
    path.chmod(0o600)
    assert scrape_token_from_env() == TOKEN
    monkeypatch.setenv("STS_METRICS_TOKEN", "short")
    with pytest.raises(ConfigError, match="at least 16"):
        scrape_token_from_env()


@pytest.mark.slow
def test_counters_add_up_to_the_sales_made_while_scraped(demo: Any) -> None:
    client, scrape = demo.client, demo.h("auditor")
    before = samples(client.get("/metrics", headers=scrape).text)
    threads, each = 4, 6
    made: list[int] = []
    seen: list[str] = []
    stop = threading.Event()

    def sell() -> None:
        for _ in range(each):
            answer = demo.buy(amount="10")
            made.append(answer.status_code)

    def watch() -> None:
        while not stop.is_set():
            answer = client.get("/metrics", headers=scrape)
            assert answer.status_code == 200
            seen.append(answer.text)

    watcher = threading.Thread(target=watch)
    watcher.start()
    sellers = [threading.Thread(target=sell) for _ in range(threads)]
    for t in sellers:
        t.start()
    for t in sellers:
        t.join()
    pid = str(uuid.uuid4())
    assert demo.buy(amount="10", pid=pid).status_code == 201
    assert demo.buy(amount="10", pid=pid).status_code == 200  # a repeat: the stored sale
    assert demo.buy(amount="0.001").status_code == 422  # INVALID_AMOUNT
    stop.set()
    watcher.join()
    assert made == [201] * (threads * each) and seen  # scraped during the load

    after = samples(client.get("/metrics", headers=scrape).text)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    sold = threads * each + 1
    assert grew("sts_sales_total", face="v1", result="new") == sold
    assert grew("sts_sales_total", face="v1", result="repeat") == 1
    assert grew("sts_sale_request_seconds_count", face="v1") == sold + 1
    assert grew("sts_errors_total", face="v1", code="INVALID_AMOUNT") == 1
    issued = (total(after, "sts_security_module_calls_total", operation="issue", outcome="ok")
              - total(before, "sts_security_module_calls_total", operation="issue",
                      outcome="ok"))
    assert issued == sold  # one issue per sale (no key change is due on the demo meters)
    for text in seen:  # no scrape ever saw more sales than were made
        mid = samples(text)
        assert 0 <= (value(mid, "sts_sales_total", face="v1", result="new")
                     - value(before, "sts_sales_total", face="v1", result="new")) <= sold


def test_delivery_jobs_and_campaign_progress_are_read_at_scrape_time(demo: Any) -> None:
    from sts.vending.usecases import campaign

    for _ in range(2):
        answer = demo.buy(amount="10", deliver=[{"channel": "sms", "to": "+27821234567"}])
        assert answer.status_code == 201, answer.text
    demo.registry.add_key("999910", 2, make_current=False)
    campaign.create(demo.service, "rollover", sgc="999910", to_krn=2)
    figures = samples(demo.client.get("/metrics", headers=demo.h("admin")).text)
    assert value(figures, "sts_delivery_jobs", channel="sms", status="pending") == 2
    assert value(figures, "sts_delivery_job_oldest_seconds", channel="sms",
                 status="pending") >= 0
    assert total(figures, "sts_campaign_meters", campaign="rollover") >= 1
    assert value(figures, "sts_campaign_meters", campaign="rollover", status="pending") >= 1


WORKER = """
import sys, uuid
from fastapi.testclient import TestClient
from sts.server.app import create_app
from sts.vending.config import Settings, open_service

db_url, kek_file, key, meter, n = sys.argv[1:6]
client = TestClient(create_app(open_service(Settings(db_url=db_url, kek_file=kek_file))))
for _ in range(int(n)):
    answer = client.post(f"/v1/purchases/{uuid.uuid4()}", json={"meter": meter, "amount": "10"},
                         headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 201, answer.text
"""


@pytest.mark.slow
def test_a_scrape_adds_up_every_worker_process(demo: Any, db_url: str, kek_file: str,
                                                tmp_path: Any, monkeypatch: Any) -> None:
    """Two processes sell in prometheus-client's multiprocess mode (as `sts serve --workers`
    runs them); a scrape answered by a third adds up both."""
    import os
    import subprocess
    import sys

    shared = tmp_path / "metrics"
    shared.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    each = 5
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, db_url, kek_file,
                                 demo.keys["vendor"], meter, str(each)], env=env)
               for meter in demo.meters[:2]]
    assert [w.wait(timeout=600) for w in workers] == [0, 0]
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    figures = samples(demo.client.get("/metrics", headers=demo.h("admin")).text)
    assert value(figures, "sts_sales_total", face="v1", result="new") == 2 * each
    assert value(figures, "sts_sale_request_seconds_count", face="v1") == 2 * each
    assert total(figures, "sts_security_module_calls_total", operation="issue") == 2 * each
    assert value(figures, "sts_database_up") == 1


def test_sales_and_errors_are_counted_per_face(demo: Any) -> None:
    """The same sale through Electrum is counted under its own face, and so is its refusal."""
    from tests.support.electrum import drn_of, make_switch

    switch = make_switch(demo)
    before = samples(demo.client.get("/metrics", headers=demo.h("admin")).text)
    assert switch.buy(drn_of(demo.meters[0]), 10000).status_code == 201
    assert switch.buy(drn_of(demo.meters[0]), 1).status_code == 400  # below the minimum
    after = samples(demo.client.get("/metrics", headers=demo.h("admin")).text)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("sts_sales_total", face="electrum", result="new") == 1
    assert grew("sts_sales_total", face="v1", result="new") == 0
    assert grew("sts_sale_request_seconds_count", face="electrum") == 1
    assert total(after, "sts_errors_total", face="electrum") - total(
        before, "sts_errors_total", face="electrum") == 1
