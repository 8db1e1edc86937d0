"""Webhook deliveries on PostgreSQL, as store/sqlite_webhooks.py: the dispatcher decides,
these apply its decisions, one transaction each; claims skip rows another dispatcher has
locked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager

from jobrunner.models import Delivery, DeliveryAttempt, DeliveryInsert, DisabledEndpoint, Event
from jobrunner.store.pg.feed import Q
from jobrunner.store.sqlite_sql import event_from_row

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

WEBHOOKS_CURSOR = "webhooks"
MAX_ID = 2**63 - 1


class PgHooks:
    conn: Any

    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError  # PostgresStore's transaction

    def _rows(self, name: str, params: Any = ()) -> list[Any]:
        raise NotImplementedError

    def webhook_cursor(self) -> int:
        return int(self._rows("cursor_get", (WEBHOOKS_CURSOR,))[0][0])

    def webhook_events(
        self, after: int, types: Sequence[str], limit: int
    ) -> tuple[list[tuple[Event, str | None, str | None]], int]:
        with self._tx() as cur:  # one snapshot for both reads
            cur.execute(Q["events_last_seq"])
            last = int(cur.fetchone()[0])
            cur.execute(Q["webhook_events"], (after, last, list(types), limit))
            rows = cur.fetchall()
        events = [(event_from_row(r), r[7], r[8]) for r in rows]
        upto = events[-1][0].seq if len(events) == limit else last
        return events, max(upto, after)

    def webhook_enqueue(
        self, after: int, upto: int, deliveries: Sequence[DeliveryInsert], now: float
    ) -> bool:
        with self._tx() as cur:
            cur.execute(Q["cursor_move"], (upto, WEBHOOKS_CURSOR, after))
            if cur.rowcount != 1:
                return False
            for d in deliveries:
                cur.execute(
                    Q["webhook_delivery_insert"],
                    (d.msg_id, d.event_seq, d.job_id, d.url, d.event_type, d.payload, now, now),
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
        rooms = dict(room or {})
        params = {
            "now": now,
            "owner": owner,
            "until": now + lease,
            "limit": limit,
            "per_url": per_url,
            "urls": list(rooms),
            "rooms": list(rooms.values()),
        }
        with self._tx() as cur:
            cur.execute(Q["webhook_claim"], params)
            rows = cur.fetchall()
        return sorted((Delivery(*r) for r in rows), key=lambda d: (d.next_at or 0, d.id))

    def webhook_next_due(self) -> float | None:
        value = self._rows("webhook_next_due")[0][0]
        return None if value is None else float(value)

    def webhook_attempt_end(
        self, owner: str, ends: Sequence[tuple[DeliveryAttempt, str, float | None, str | None]]
    ) -> list[bool]:
        kept = []
        with self._tx() as cur:
            for a, state, next_at, disable in ends:
                cur.execute(
                    Q["webhook_delivery_end"],
                    {
                        "id": a.delivery_id,
                        "owner": owner,
                        "state": state,
                        "next_at": next_at,
                        "at": a.at,
                        "status": a.status,
                        "error": a.error,
                    },
                )
                got = cur.fetchone()
                if got is None:
                    kept.append(False)
                    continue
                cur.execute(
                    Q["webhook_attempt_insert"],
                    (a.delivery_id, a.at, a.outcome, a.status, a.body, a.error, a.duration),
                )
                if disable is not None:
                    cur.execute(Q["webhook_endpoint_disable"], (got[0], a.at, disable))
                kept.append(True)
        return kept

    def webhook_deliveries(
        self,
        job_id: int | None = None,
        state: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> list[Delivery]:
        below = MAX_ID if before is None else before
        if job_id is None:
            rows = self._rows("webhook_deliveries_list", (state, state, below, limit))
        else:
            rows = self._rows("webhook_deliveries_of_job", (job_id, state, state, below, limit))
        return [Delivery(*r) for r in rows]

    def webhook_delivery(self, delivery_id: int) -> Delivery | None:
        rows = self._rows("webhook_delivery_get", (delivery_id,))
        return Delivery(*rows[0]) if rows else None

    def webhook_attempts(self, delivery_id: int) -> list[DeliveryAttempt]:
        return [DeliveryAttempt(*r) for r in self._rows("webhook_attempts_of", (delivery_id,))]

    def webhook_redeliver(self, delivery_id: int, now: float) -> bool:
        with self._tx() as cur:
            cur.execute(Q["webhook_redeliver"], (now, delivery_id))
            return bool(cur.rowcount)

    def webhook_counts(self) -> dict[str, int]:
        return {state: n for state, n in self._rows("webhook_counts")}

    def webhook_disabled(self) -> list[DisabledEndpoint]:
        return [DisabledEndpoint(*r) for r in self._rows("webhook_endpoints_disabled")]

    def webhook_enable(self, url: str) -> bool:
        with self._tx() as cur:
            cur.execute(Q["webhook_endpoint_enable"], (url,))
            return bool(cur.rowcount)

    def webhook_prune(self, before: float, batch: int = 1000) -> int:
        with self._tx() as cur:
            cur.execute(Q["webhook_prune"], (before, batch))
            return int(cur.fetchone()[0])
