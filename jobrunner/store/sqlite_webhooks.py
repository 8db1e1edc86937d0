"""Webhook deliveries: the outbox's expansion into deliveries, their claims, attempts and
retention (docs/architecture.md, "Webhooks"). The dispatcher decides (which URLs, when to
retry, when to give up); these methods apply its decisions, one transaction each. A mixin
of SQLiteStore, as sqlite_claims.py is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager

from jobrunner.jsonutil import dumps as _dumps
from jobrunner.models import Delivery, DeliveryAttempt, DeliveryInsert, DisabledEndpoint, Event
from jobrunner.store.sqlite_sql import Q, event_from_row
from jobrunner.store.sqlite_tx import refusing_damage

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    # an attempt, the delivery's state after it, when it is due again, why to disable its URL
    AttemptEnd = tuple[DeliveryAttempt, str, float | None, str | None]

WEBHOOKS_CURSOR = "webhooks"
MAX_ID = 2**63 - 1


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(*row)


@refusing_damage  # a damaged file: DatabaseCorrupt from every method, reads included
class SQLiteWebhooks:
    db: Any

    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError  # SQLiteStore's write transaction

    def webhook_cursor(self) -> int:
        """The last event seq the dispatchers have turned into deliveries."""
        rows = self.db.execute(Q["cursor_get"], (WEBHOOKS_CURSOR,)).fetchall()
        return int(rows[0][0])

    def webhook_events(
        self, after: int, types: Sequence[str], limit: int
    ) -> tuple[list[tuple[Event, str | None, str | None]], int]:
        """The events of `types` after `after`, up to `limit`, each with its job's queue
        and callback URL (None, None: the job is gone), and the seq they were read up to
        (the cursor may move there: no event of those types lies before it)."""
        self.db.execute(Q["read_begin"])
        try:
            last = int(self.db.execute(Q["events_last_seq"]).fetchall()[0][0])
            rows = self.db.execute(
                Q["webhook_events"], (after, last, _dumps(list(types)), limit)
            ).fetchall()
        finally:
            self.db.execute(Q["read_end"])
        events = [(event_from_row(r), r[7], r[8]) for r in rows]
        upto = events[-1][0].seq if len(events) == limit else last
        return events, max(upto, after)

    def webhook_enqueue(
        self, after: int, upto: int, deliveries: Sequence[DeliveryInsert], now: float
    ) -> bool:
        """Record the deliveries of the events after `after` up to `upto`, and move the
        cursor there, in one transaction. False, writing nothing, when the cursor is no
        longer at `after` (another dispatcher read those events first)."""
        with self._tx() as db:
            db.execute(Q["cursor_move"], (WEBHOOKS_CURSOR, after, upto))
            if db.changes() != 1:
                return False
            for d in deliveries:
                db.execute(
                    Q["webhook_delivery_insert"],
                    (d.msg_id, d.event_seq, d.job_id, d.url, d.event_type, d.payload, now),
                )
            return True

    def webhook_claim(
        self,
        owner: str,
        now: float,
        lease: float,
        limit: int,
        per_url: int,
        room: Mapping[str, int] | None = None,
    ) -> list[Delivery]:
        """Take up to `limit` due deliveries for `owner` until now + `lease`: per URL at
        most its `room` (URLs with sends in flight), else `per_url`; none for a disabled
        endpoint."""
        pairs = _dumps([[url, n] for url, n in (room or {}).items()])
        with self._tx() as db:
            rows = db.execute(
                Q["webhook_claim"], (now, owner, now + lease, limit, per_url, pairs)
            ).fetchall()
        return sorted((_delivery(r) for r in rows), key=lambda d: (d.next_at or 0, d.id))

    def webhook_next_due(self) -> float | None:
        rows = self.db.execute(Q["webhook_next_due"]).fetchall()
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    def webhook_attempt_end(self, owner: str, ends: Sequence[AttemptEnd]) -> list[bool]:
        """Record attempts of deliveries `owner` holds, and what follows each: its state
        (pending again at `next_at`, delivered or failed) and the reason to disable its
        URL (a 410), in one transaction. For each, False (nothing written for it) when
        `owner` no longer holds it: its lease ran out and another dispatcher took it."""
        kept = []
        with self._tx() as db:
            for a, state, next_at, disable in ends:
                db.execute(
                    Q["webhook_delivery_end"],
                    (a.delivery_id, owner, state, next_at, a.at, a.status, a.error),
                )
                if db.changes() != 1:
                    kept.append(False)
                    continue
                db.execute(
                    Q["webhook_attempt_insert"],
                    (a.delivery_id, a.at, a.outcome, a.status, a.body, a.error, a.duration),
                )
                if disable is not None:
                    url = db.execute(Q["webhook_delivery_get"], (a.delivery_id,)).fetchall()[0][4]
                    db.execute(Q["webhook_endpoint_disable"], (url, a.at, disable))
                kept.append(True)
        return kept

    def webhook_deliveries(
        self,
        job_id: int | None = None,
        state: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> list[Delivery]:
        """Newest first; `before`: only ids below it (the next page)."""
        params = (job_id, state, limit, MAX_ID if before is None else before)
        query = "webhook_deliveries_list" if job_id is None else "webhook_deliveries_of_job"
        return [_delivery(r) for r in self.db.execute(Q[query], params)]

    def webhook_delivery(self, delivery_id: int) -> Delivery | None:
        rows = self.db.execute(Q["webhook_delivery_get"], (delivery_id,)).fetchall()
        return _delivery(rows[0]) if rows else None

    def webhook_attempts(self, delivery_id: int) -> list[DeliveryAttempt]:
        return [
            DeliveryAttempt(*r) for r in self.db.execute(Q["webhook_attempts_of"], (delivery_id,))
        ]

    def webhook_redeliver(self, delivery_id: int, now: float) -> bool:
        """Make a delivery pending again from the first attempt of the schedule, with the
        same webhook-id; False when there is none, or it is being sent now."""
        with self._tx() as db:
            db.execute(Q["webhook_redeliver"], (delivery_id, now))
            return bool(db.changes())

    def webhook_counts(self) -> dict[str, int]:
        """Deliveries by state: pending, delivered, failed."""
        return {state: n for state, n in self.db.execute(Q["webhook_counts"])}

    def webhook_disabled(self) -> list[DisabledEndpoint]:
        return [DisabledEndpoint(*r) for r in self.db.execute(Q["webhook_endpoints_disabled"])]

    def webhook_enable(self, url: str) -> bool:
        """Re-enable a URL a 410 disabled; its pending deliveries go out again."""
        with self._tx() as db:
            db.execute(Q["webhook_endpoint_enable"], (url,))
            return bool(db.changes())

    def webhook_prune(self, before: float, batch: int = 1000) -> int:
        """Delete up to `batch` deliveries (and their attempts) that ended before
        `before`; returns how many went."""
        with self._tx() as db:
            ids = [r[0] for r in db.execute(Q["webhook_prune_ids"], (before, batch))]
            if ids:
                db.execute(Q["webhook_attempts_delete"], (_dumps(ids),))
                db.execute(Q["webhook_deliveries_delete"], (_dumps(ids),))
            return len(ids)
