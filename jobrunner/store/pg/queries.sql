-- PostgreSQL's named queries (store/pg/): the same names as the SQLite store's where the
-- query means the same. Parameters are psycopg's %s, in the order each comment gives.

-- name: feed_lock
-- Appends to the feed commit in `seq` order: every transaction that appends events takes
-- this lock just before its inserts, and holds it to its commit (docs/architecture.md,
-- "PostgreSQL"). The key: "JobE".
SELECT pg_advisory_xact_lock(1248813637)

-- name: event_insert
-- (at, job_id, attempt, type, state, data)
INSERT INTO job_events (at, job_id, attempt, type, state, data) VALUES (%s, %s, %s, %s, %s, %s)

-- name: events_after
-- (seq, limit): the feed from a seq on
SELECT seq, at, job_id, attempt, type, state, data FROM job_events
WHERE seq > %s ORDER BY seq LIMIT %s

-- name: events_last_seq
SELECT coalesce(max(seq), 0) FROM job_events
