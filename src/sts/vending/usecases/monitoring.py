"""What an operator's monitoring reads from the database at scrape time (`/metrics`): the
delivery jobs per channel and state with the age of the oldest, and each campaign's meters per
state.  Read from the database rather than counted in a process, so every server process
answers the same figures, whichever one a scrape reaches.  Who may read them is the server's
check (`read_metrics` in the access policy, or the scrape token)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from sts.vending.storage.tables import campaign_items, campaigns
from sts.vending.storage.tables_delivery import deliveries

if TYPE_CHECKING:
    from sts.vending.context import ServiceContext


@dataclass(frozen=True)
class JobFigure:
    channel: str
    status: str
    count: int
    oldest_seconds: float  # age of the oldest job in this state (since it was made)


@dataclass(frozen=True)
class CampaignFigure:
    campaign: str
    status: str
    count: int


def delivery_jobs(svc: ServiceContext) -> list[JobFigure]:
    now = svc.now()
    q = (select(deliveries.c.channel, deliveries.c.status, func.count().label("n"),
                func.min(deliveries.c.created_at).label("oldest"))
         .group_by(deliveries.c.channel, deliveries.c.status))
    with svc.db.read() as conn:
        rows = conn.execute(q).all()
    return [JobFigure(r.channel, r.status, int(r.n),
                      max(0.0, (now - r.oldest).total_seconds()) if r.oldest else 0.0)
            for r in rows]


def campaign_progress(svc: ServiceContext) -> list[CampaignFigure]:
    q = (select(campaigns.c.name, campaign_items.c.status, func.count().label("n"))
         .join(campaigns, campaigns.c.id == campaign_items.c.campaign_id)
         .group_by(campaigns.c.name, campaign_items.c.status))
    with svc.db.read() as conn:
        return [CampaignFigure(r.name, r.status, int(r.n)) for r in conn.execute(q)]
