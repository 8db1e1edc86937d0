-- The job event feed: one row per state change, appended in the transaction that makes
-- the change, in commit order (AUTOINCREMENT: a seq is never reused, even after the
-- oldest events are pruned). Readers follow it from a seq instead of polling job rows.
CREATE TABLE job_events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      REAL    NOT NULL,              -- epoch seconds, UTC: when the change was made
    job_id  INTEGER NOT NULL,
    attempt INTEGER NOT NULL,              -- the attempt it concerns (0 before the first)
    type    TEXT    NOT NULL,              -- job.queued, job.started, ... (lifecycle.py)
    state   TEXT    NOT NULL,              -- the job's state after the change
    data    TEXT                           -- a small JSON object, or NULL
);
-- One job's events in order (`wait`, `logs --follow`, `events --job`).
CREATE INDEX job_events_job ON job_events (job_id, seq);
