-- Webhooks (docs/architecture.md, "Webhooks"). The outbox is the event feed itself: a
-- job's final event is written in the transaction of its state change. The dispatcher
-- turns events into deliveries, moving `cursors.webhooks` on in the same transaction, so
-- each event is expanded once, and retention prunes no event the cursor has not passed.
CREATE TABLE cursors (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
);
-- Start after what is already in the feed: no deliveries for history.
INSERT INTO cursors (name, seq) VALUES ('webhooks', (SELECT coalesce(max(seq), 0) FROM job_events));

-- One POST of one event to one URL, retried until it is delivered or given up.
CREATE TABLE webhook_deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id      TEXT    NOT NULL UNIQUE,  -- the webhook-id header, the same on every attempt
    event_seq   INTEGER NOT NULL,
    job_id      INTEGER NOT NULL,
    url         TEXT    NOT NULL,
    event_type  TEXT    NOT NULL,
    payload     TEXT    NOT NULL,         -- the body, fixed when the delivery was made
    state       TEXT    NOT NULL,         -- pending, delivered, failed
    attempts    INTEGER NOT NULL DEFAULT 0, -- since it was made or redelivered
    next_at     REAL,                     -- when pending: not before
    owner       TEXT,                     -- the dispatcher sending it, until lease_until
    lease_until REAL,
    created_at  REAL    NOT NULL,
    ended_at    REAL,
    last_status INTEGER,
    last_error  TEXT,
    UNIQUE (event_seq, url)
);
-- The dispatcher's claim: pending deliveries in the order they are due.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_job ON webhook_deliveries (job_id, id);
-- Retention and `deliveries --failed`.
CREATE INDEX webhook_deliveries_state ON webhook_deliveries (state, id);

-- Each attempt's answer: status, the first 2 KB of the body, or why it was not sent.
CREATE TABLE webhook_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL,
    at          REAL    NOT NULL,
    outcome     TEXT    NOT NULL,         -- delivered, failed, gone, refused
    status      INTEGER,
    body        TEXT,
    error       TEXT,
    duration    REAL    NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

-- Endpoints are in the config; what the database keeps of them is whether a 410 Gone
-- disabled one (until `webhooks enable URL`).
CREATE TABLE webhook_endpoints (
    url         TEXT PRIMARY KEY,
    disabled_at REAL NOT NULL,
    reason      TEXT NOT NULL
);
