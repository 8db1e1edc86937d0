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

-- name: events_of_job_after
-- (job_id, seq, limit)
SELECT seq, at, job_id, attempt, type, state, data FROM job_events
WHERE job_id = %s AND seq > %s ORDER BY seq LIMIT %s

-- name: events_prune_upto
-- (limit, before): the newest seq among the oldest events older than `before`, never
-- past the webhooks cursor.
SELECT max(seq) FROM (SELECT seq, at FROM job_events ORDER BY seq LIMIT %s) AS oldest
WHERE at < %s AND seq <= (SELECT seq FROM cursors WHERE name = 'webhooks')

-- name: events_delete_upto
DELETE FROM job_events WHERE seq <= %s

-- name: feed_notify
-- Readers LISTEN on this channel (the feed watch); sent at commit.
SELECT pg_notify('jobrunner_feed', '')

-- name: feed_and_wake_notify
-- (message): a submit's transaction wakes the daemons as well, in the same statement;
-- both are sent at its commit (and not at all if it rolls back).
SELECT pg_notify('jobrunner_feed', ''), pg_notify('jobrunner_wake', %s)

-- == jobs =================================================================================

-- name: job_insert
INSERT INTO jobs (state, task, command, args, kwargs, queue, priority, max_attempts, retries,
                  backoff, timeout, created_at, run_at, key, schedule, scheduled_for, options)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
RETURNING id

-- name: job_insert_keyed
INSERT INTO jobs (state, task, command, args, kwargs, queue, priority, max_attempts, retries,
                  backoff, timeout, created_at, run_at, key, schedule, scheduled_for, options)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING
RETURNING id

-- name: job_insert_fire
INSERT INTO jobs (state, task, command, args, kwargs, queue, priority, max_attempts, retries,
                  backoff, timeout, created_at, run_at, key, schedule, scheduled_for, options)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (schedule, scheduled_for) WHERE schedule IS NOT NULL DO NOTHING
RETURNING id

-- name: job_id_by_key
SELECT id FROM jobs WHERE key = %s

-- name: job_state
SELECT state FROM jobs WHERE id = %s

-- name: job_get
SELECT {job_columns} FROM jobs WHERE id = %s

-- name: job_list
-- (states array or NULL, queue, task, upto, limit): newest first from `upto` down.
SELECT {job_columns} FROM jobs
WHERE id <= %(upto)s
  AND (%(states)s::text[] IS NULL OR state = ANY(%(states)s::text[]))
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(task)s::text IS NULL OR task = %(task)s::text
       OR options::jsonb ->> 'task_name' = %(task)s::text)
ORDER BY id DESC
LIMIT %(limit)s

-- name: job_search
-- The dashboard's filter over a window: the %(window)s newest jobs below %(before)s (the
-- primary key walked), never the whole table; the caller goes on from the window's end.
-- %(text)s is matched as typed and as JSON writes it (%(text_json)s). {what}, {tail}:
-- the job's columns and the page's order and limit, or its id alone (store/search.py).
SELECT {what} FROM (
    SELECT * FROM jobs WHERE id < %(before)s ORDER BY id DESC LIMIT %(window)s
) AS recent
WHERE (%(states)s::text[] IS NULL OR state = ANY(%(states)s::text[]))
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(task)s::text IS NULL OR task = %(task)s::text
       OR options::jsonb ->> 'task_name' = %(task)s::text)
  AND (%(text)s::text IS NULL
       OR strpos(args, %(text)s::text) > 0 OR strpos(kwargs, %(text)s::text) > 0
       OR strpos(coalesce(command, ''), %(text)s::text) > 0
       OR strpos(args, %(text_json)s::text) > 0 OR strpos(kwargs, %(text_json)s::text) > 0
       OR strpos(coalesce(command, ''), %(text_json)s::text) > 0)
  AND (%(since)s::float8 IS NULL OR created_at >= %(since)s::float8)
  AND (%(until)s::float8 IS NULL OR created_at < %(until)s::float8)
{tail}

-- name: job_search_window
SELECT count(*), min(id) FROM (
    SELECT id FROM jobs WHERE id < %(before)s ORDER BY id DESC LIMIT %(window)s
) AS recent

-- name: counts
-- The deltas the triggers appended (pg/migrations/0003_job_counts.sql), summed, and how
-- many rows that took (the reader folds them when the leader has not lately).
SELECT state, queue, sum(n)::bigint, count(*) FROM job_count_deltas
GROUP BY state, queue

-- name: counts_fold
-- Every delta seen folded into one row per (state, queue). Deltas committed meanwhile
-- are not seen, so not deleted: they stay, to be summed with the folded rows.
WITH gone AS (DELETE FROM job_count_deltas RETURNING state, queue, n)
INSERT INTO job_count_deltas (state, queue, n)
SELECT state, queue, sum(n) FROM gone GROUP BY state, queue HAVING sum(n) <> 0

-- name: recent_failures
-- The newest dead jobs down jobs_ended, and the retrying ones (few) down jobs_due; never
-- every dead job sorted. The IN repeats each index's WHERE.
SELECT {job_columns} FROM (
    (SELECT * FROM jobs
     WHERE state IN ('succeeded', 'dead', 'cancelled') AND state = 'dead'
       AND error IS NOT NULL
     ORDER BY finished_at DESC LIMIT %(limit)s)
    UNION ALL
    (SELECT * FROM jobs
     WHERE state IN ('scheduled', 'retrying') AND state = 'retrying' AND error IS NOT NULL
     ORDER BY run_at DESC LIMIT %(limit)s)
) AS failed
ORDER BY coalesce(finished_at, run_at) DESC
LIMIT %(limit)s

-- name: running_jobs
SELECT {job_columns} FROM jobs WHERE state = 'running' ORDER BY started_at, id LIMIT %s

-- name: ended_per_minute
SELECT state, floor((finished_at - %(since)s) / 60)::int AS minute, count(*) FROM jobs
WHERE state IN ('succeeded', 'dead', 'cancelled') AND finished_at > %(since)s
GROUP BY state, minute

-- name: ended_since
SELECT state, count(*) FROM jobs
WHERE state IN ('succeeded', 'dead', 'cancelled') AND finished_at > %s
GROUP BY state

-- name: attempts_of
SELECT job_id, attempt, outcome, started_at, finished_at, error, traceback, owner,
       cpu_seconds, max_rss_kb, exit_code, signal
FROM attempts WHERE job_id = %s ORDER BY ctid

-- name: next_due
SELECT min(run_at) FROM jobs WHERE state IN ('scheduled', 'retrying')

-- name: cancel_waiting
-- (now, id)
UPDATE jobs SET state = 'cancelled', finished_at = %s, error = 'cancelled before it started'
WHERE id = %s AND state IN ('blocked', 'queued', 'scheduled', 'retrying')
RETURNING attempts, dependents

-- name: cancel_request
UPDATE jobs SET cancel_requested = true WHERE id = %s AND state = 'running'

-- name: cancel_requests
SELECT id, attempts FROM jobs WHERE state = 'running' AND owner = %s AND cancel_requested

-- name: dead_retry
-- (now, id)
UPDATE jobs
SET state = 'queued', max_attempts = attempts + retries + 1, run_at = %s, finished_at = NULL,
    error = NULL, result = NULL
WHERE id = %s AND state = 'dead'
RETURNING attempts, dependents

-- name: dead_ids
SELECT id FROM jobs WHERE state = 'dead'
  AND substr(coalesce(error, ''), 1, 13) <> 'not retried: '
ORDER BY id

-- name: ended_delete
-- (state, before, limit)
DELETE FROM jobs
WHERE id IN (SELECT id FROM jobs WHERE state = %s AND finished_at < %s
             AND state IN ('succeeded', 'dead', 'cancelled') LIMIT %s)
RETURNING id

-- name: ended_delete_ids
DELETE FROM jobs
WHERE id = ANY(%s) AND state IN ('succeeded', 'dead', 'cancelled')
RETURNING id

-- name: ended_count
SELECT count(*) FROM jobs
WHERE state = %s AND finished_at < %s AND state IN ('succeeded', 'dead', 'cancelled')

-- name: waiting_ids
-- (state, queue, queue)
SELECT id FROM jobs
WHERE state = %s AND state IN ('queued', 'scheduled', 'retrying')
  AND (%s::text IS NULL OR queue = %s::text)

-- name: running_ids
-- (queue, queue)
SELECT id FROM jobs WHERE state = 'running' AND (%s::text IS NULL OR queue = %s::text)

-- name: attempts_delete
DELETE FROM attempts WHERE job_id = ANY(%s)

-- == claims ===============================================================================

-- name: claim
-- One statement: the best due jobs (of `queues`, or any queue but the capped ones, which
-- are claimed apart), locked past those another daemon holds, moved to running. Two
-- index walks, each stopping at the limit: jobs_queued in claim order for the ready
-- jobs, jobs_due in run_at order for delayed ones and retries that fell due.
-- (owner, now, queues or NULL, capped, limit)
WITH queued AS (
    SELECT id, priority, run_at FROM jobs
    WHERE state = 'queued'
      AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
      AND NOT (queue = ANY(%(capped)s::text[]))
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), due AS (
    SELECT id, priority, run_at FROM jobs
    WHERE state IN ('scheduled', 'retrying') AND run_at <= %(now)s
      AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
      AND NOT (queue = ANY(%(capped)s::text[]))
    ORDER BY run_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), chosen AS (
    SELECT id FROM (SELECT * FROM queued UNION ALL SELECT * FROM due) AS ready
    ORDER BY priority DESC, run_at, id LIMIT %(limit)s
)
UPDATE jobs AS j
SET state = 'running', attempts = j.attempts + 1, owner = %(owner)s, started_at = %(now)s,
    cancel_requested = false, progress = NULL, progress_message = NULL, progress_at = NULL
FROM chosen WHERE j.id = chosen.id
RETURNING {job_columns_j}

-- name: claim_queue
-- One capped queue: at most its room. (owner, now, queue, limit)
WITH chosen AS (
    SELECT id FROM jobs
    WHERE state IN ('queued', 'scheduled', 'retrying') AND queue = %(queue)s
      AND run_at <= %(now)s
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs AS j
SET state = 'running', attempts = j.attempts + 1, owner = %(owner)s, started_at = %(now)s,
    cancel_requested = false, progress = NULL, progress_message = NULL, progress_at = NULL
FROM chosen WHERE j.id = chosen.id
RETURNING {job_columns_j}

-- name: end_attempt
-- Fencing: only the owner of this very attempt may end it.
-- (state, run_at, result, error, started_at, finished_at, id, attempt, owner, uncounted)
UPDATE jobs
SET state = %(state)s, attempts = attempts - %(uncounted)s, run_at = coalesce(%(run_at)s, run_at),
    result = %(result)s, error = %(error)s, started_at = coalesce(%(started_at)s, started_at),
    finished_at = %(finished_at)s, owner = NULL, cancel_requested = false,
    progress = CASE WHEN %(state)s = 'succeeded' THEN 1.0 ELSE progress END
WHERE id = %(id)s AND state = 'running' AND attempts = %(attempt)s
  AND owner IS NOT DISTINCT FROM %(owner)s
RETURNING id, dependents

-- name: attempt_insert
INSERT INTO attempts (job_id, attempt, outcome, started_at, finished_at, error, traceback, owner,
                      cpu_seconds, max_rss_kb, exit_code, signal)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)

-- name: release
-- (id, attempt, owner)
UPDATE jobs
SET state = 'queued', attempts = attempts - 1, owner = NULL, started_at = NULL,
    cancel_requested = false
WHERE id = %s AND state = 'running' AND attempts = %s AND owner = %s
RETURNING attempts

-- name: job_progress
-- (fraction, message, at, id, attempt, owner)
UPDATE jobs SET progress = %s, progress_message = %s, progress_at = %s
WHERE id = %s AND state = 'running' AND attempts = %s AND owner = %s

-- name: running_orphans
-- (rescuer, rescuer)
SELECT {job_columns} FROM jobs
WHERE state = 'running' AND owner IS DISTINCT FROM %s
  AND (owner IS NULL OR owner NOT IN (SELECT id FROM daemons))

-- name: daemons_dead_delete
-- (ids, rescuer)
DELETE FROM daemons WHERE id = ANY(%s) AND id IS DISTINCT FROM %s

-- name: leases_of_daemons_delete
DELETE FROM leases WHERE owner = ANY(%s)

-- == daemons, schedules, leases ===========================================================

-- name: daemon_upsert
INSERT INTO daemons (id, host, pid, started_at, heartbeat_at, lease_until, workers, queues,
                     node)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,
                               lease_until = excluded.lease_until

-- name: daemon_heartbeat
UPDATE daemons SET heartbeat_at = %s, lease_until = %s WHERE id = %s

-- name: daemon_expire
UPDATE daemons SET lease_until = 0 WHERE id = %s

-- name: daemon_delete
DELETE FROM daemons WHERE id = %s

-- name: daemon_list
SELECT id, host, pid, started_at, heartbeat_at, lease_until, workers, queues, node
FROM daemons ORDER BY started_at

-- name: schedule_list
SELECT s.name, s.last_fire, s.paused,
       (SELECT j.id FROM jobs j WHERE j.schedule = s.name
        ORDER BY j.scheduled_for DESC LIMIT 1) AS last_job
FROM schedules s ORDER BY s.name

-- name: schedule_create
-- (name, last_fire, now)
INSERT INTO schedules (name, last_fire, paused, updated_at) VALUES (%s, %s, false, %s)
ON CONFLICT (name) DO NOTHING

-- name: schedule_advance
-- Compare-and-set. (new_last, now, name, expected_last)
UPDATE schedules SET last_fire = %s, updated_at = %s
WHERE name = %s AND last_fire IS NOT DISTINCT FROM %s AND NOT paused

-- name: schedule_set_paused
-- (name, now, paused)
INSERT INTO schedules (name, last_fire, paused, updated_at)
VALUES (%(name)s, %(now)s, %(paused)s, %(now)s)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused,
    last_fire = CASE WHEN excluded.paused THEN schedules.last_fire ELSE excluded.last_fire END,
    updated_at = excluded.updated_at

-- name: schedule_states
-- (names): one row per name, in order.
SELECT n.name, s.last_fire, coalesce(s.paused, false),
       (SELECT j.id FROM jobs j WHERE j.schedule = n.name
        ORDER BY j.scheduled_for DESC LIMIT 1) AS last_job
FROM unnest(%s::text[]) WITH ORDINALITY AS n(name, i) LEFT JOIN schedules s ON s.name = n.name
ORDER BY n.i

-- name: schedule_last_jobs
-- (name, last_fire): see the SQLite query of the same name.
SELECT {job_columns} FROM jobs
WHERE schedule = %(name)s AND scheduled_for >= coalesce(
    (SELECT scheduled_for FROM jobs
     WHERE schedule = %(name)s AND scheduled_for <= %(last)s
       AND coalesce((options::jsonb ->> 'manual')::boolean, false) IS NOT TRUE
     ORDER BY scheduled_for DESC LIMIT 1), %(last)s)
ORDER BY scheduled_for

-- name: lease_acquire
-- (name, owner, now, ttl)
INSERT INTO leases (name, owner, expires_at)
VALUES (%(name)s, %(owner)s, %(now)s + %(ttl)s)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE leases.owner = excluded.owner OR leases.expires_at <= %(now)s
RETURNING owner

-- name: lease_renew
UPDATE leases SET expires_at = %(now)s + %(ttl)s WHERE name = %(name)s AND owner = %(owner)s

-- name: lease_release
DELETE FROM leases WHERE name = %s AND owner = %s

-- name: lease_holder
SELECT owner FROM leases WHERE name = %s

-- == webhooks (store/pg/hooks.py; as the SQLite queries of the same names) =================

-- name: cursor_get
SELECT seq FROM cursors WHERE name = %s

-- name: cursor_move
-- (name, from, to)
UPDATE cursors SET seq = %s WHERE name = %s AND seq = %s

-- name: webhook_events
-- (after, last, types, limit)
SELECT e.seq, e.at, e.job_id, e.attempt, e.type, e.state, e.data, j.queue,
       CASE WHEN j.options IS NOT NULL THEN j.options::jsonb ->> 'callback' END
FROM job_events AS e LEFT JOIN jobs AS j ON j.id = e.job_id
WHERE e.seq > %s AND e.seq <= %s AND e.type = ANY(%s)
ORDER BY e.seq LIMIT %s

-- name: webhook_delivery_insert
-- (msg_id, event_seq, job_id, url, event_type, payload, now, now)
INSERT INTO webhook_deliveries
    (msg_id, event_seq, job_id, url, event_type, payload, state, next_at, created_at)
VALUES (%s, %s, %s, %s, %s, %s, 'pending', %s, %s)
ON CONFLICT DO NOTHING

-- name: webhook_claim
-- (now, owner, lease_until, limit, per_url, room urls, room sizes)
WITH room AS (
    SELECT * FROM unnest(%(urls)s::text[], %(rooms)s::int[]) AS r(url, n)
), due AS (
    SELECT id, url, next_at FROM webhook_deliveries
    WHERE state = 'pending' AND next_at <= %(now)s
      AND (lease_until IS NULL OR lease_until <= %(now)s)
      AND url NOT IN (SELECT url FROM webhook_endpoints)
      AND url NOT IN (SELECT url FROM room WHERE n <= 0)
    ORDER BY next_at LIMIT 1000
), ranked AS (
    SELECT id, url, next_at, row_number() OVER (PARTITION BY url ORDER BY next_at, id) AS n
    FROM due
), chosen AS (
    SELECT d.id FROM webhook_deliveries d JOIN ranked ON ranked.id = d.id
    WHERE ranked.n <= coalesce((SELECT room.n FROM room WHERE room.url = ranked.url),
                               %(per_url)s)
    ORDER BY ranked.next_at, ranked.id LIMIT %(limit)s
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries AS w SET owner = %(owner)s, lease_until = %(until)s
FROM chosen WHERE w.id = chosen.id
RETURNING w.id, w.msg_id, w.event_seq, w.job_id, w.url, w.event_type, w.payload, w.state,
          w.attempts, w.next_at, w.owner, w.lease_until, w.created_at, w.ended_at,
          w.last_status, w.last_error

-- name: webhook_next_due
SELECT min(greatest(next_at, coalesce(lease_until, 0))) FROM webhook_deliveries
WHERE state = 'pending' AND url NOT IN (SELECT url FROM webhook_endpoints)

-- name: webhook_delivery_end
-- (id, owner, state, next_at, at, status, error)
UPDATE webhook_deliveries
SET state = %(state)s, attempts = attempts + 1, next_at = %(next_at)s, owner = NULL,
    lease_until = NULL,
    ended_at = CASE WHEN %(state)s = 'pending' THEN NULL ELSE %(at)s END,
    last_status = %(status)s, last_error = %(error)s
WHERE id = %(id)s AND owner = %(owner)s AND state = 'pending'
RETURNING url

-- name: webhook_attempt_insert
INSERT INTO webhook_attempts (delivery_id, at, outcome, status, body, error, duration)
VALUES (%s, %s, %s, %s, %s, %s, %s)

-- name: webhook_deliveries_list
-- (state, state, before, limit)
SELECT id, msg_id, event_seq, job_id, url, event_type, payload, state, attempts, next_at,
       owner, lease_until, created_at, ended_at, last_status, last_error
FROM webhook_deliveries
WHERE (%s::text IS NULL OR state = %s::text) AND id < %s
ORDER BY id DESC LIMIT %s

-- name: webhook_deliveries_of_job
-- (job, state, state, before, limit)
SELECT id, msg_id, event_seq, job_id, url, event_type, payload, state, attempts, next_at,
       owner, lease_until, created_at, ended_at, last_status, last_error
FROM webhook_deliveries
WHERE job_id = %s AND (%s::text IS NULL OR state = %s::text) AND id < %s
ORDER BY id DESC LIMIT %s

-- name: webhook_delivery_get
SELECT id, msg_id, event_seq, job_id, url, event_type, payload, state, attempts, next_at,
       owner, lease_until, created_at, ended_at, last_status, last_error
FROM webhook_deliveries WHERE id = %s

-- name: webhook_attempts_of
SELECT delivery_id, at, outcome, status, body, error, duration FROM webhook_attempts
WHERE delivery_id = %s ORDER BY id

-- name: webhook_redeliver
-- (now, id)
UPDATE webhook_deliveries
SET state = 'pending', attempts = 0, next_at = %s, ended_at = NULL
WHERE id = %s AND owner IS NULL

-- name: webhook_counts
SELECT state, count(*) FROM webhook_deliveries GROUP BY state

-- name: webhook_endpoint_disable
INSERT INTO webhook_endpoints (url, disabled_at, reason) VALUES (%s, %s, %s)
ON CONFLICT (url) DO UPDATE SET disabled_at = excluded.disabled_at, reason = excluded.reason

-- name: webhook_endpoint_enable
DELETE FROM webhook_endpoints WHERE url = %s

-- name: webhook_endpoints_disabled
SELECT url, disabled_at, reason FROM webhook_endpoints ORDER BY url

-- name: webhook_prune
-- (before, limit): ended deliveries and, in the same statement, their attempts
WITH gone AS (
    DELETE FROM webhook_deliveries WHERE id IN (
        SELECT id FROM webhook_deliveries
        WHERE state IN ('delivered', 'failed') AND ended_at < %s ORDER BY id LIMIT %s)
    RETURNING id
), attempts_gone AS (
    DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM gone)
)
SELECT count(*) FROM gone

-- == wake-ups and the feed watch (store/pg/signals.py) ======================================

-- name: db_time
-- The database's clock (epoch seconds): every host's `now` (clock.py's `follow`).
SELECT extract(epoch FROM clock_timestamp())::float8

-- name: wake_notify
-- (message): delivered at once (autocommit) to every daemon's wake connection (a cancel,
-- a retry; a submit notifies in its transaction: feed_and_wake_notify)
SELECT pg_notify('jobrunner_wake', %s)

-- name: wake_listeners
-- How many wake connections listen (each runs nothing but its LISTEN): best effort.
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND query = 'LISTEN jobrunner_wake'

-- name: wake_listen
LISTEN jobrunner_wake

-- name: feed_listen
LISTEN jobrunner_feed

-- == jobs' output (store/pg/output.py) ======================================================

-- name: output_cut
-- (job, at): an attempt's pieces, dropped to be shipped again whole (its log was capped)
DELETE FROM job_output WHERE job_id = %s AND at >= %s

-- name: output_append
-- (job, data, job): the piece goes at the end of what the job has; its offset returned.
-- One shipper writes a job's output at a time; were there two, the second's piece at the
-- same offset is dropped rather than interleaved.
INSERT INTO job_output (job_id, at, data)
SELECT %s, coalesce(max(at + length(data)), 0), %s FROM job_output WHERE job_id = %s
ON CONFLICT DO NOTHING
RETURNING at

-- name: output_read
-- (job, offset): the pieces that hold bytes from offset on, in order
SELECT at, data FROM job_output WHERE job_id = %s AND at + length(data) > %s ORDER BY at

-- name: output_delete
DELETE FROM job_output WHERE job_id = ANY(%s)

-- name: output_notify
-- Readers of output (`logs --follow`, /jobs/ID/logs) LISTEN on this channel.
SELECT pg_notify('jobrunner_output', '')

-- name: output_listen
LISTEN jobrunner_output

-- == copying another jobrunner database in (store/pg/importer.py) =========================

-- name: import_lock
-- Held to the copy's commit: submits, fires and deliveries wait rather than mix in.
LOCK TABLE jobs, schedules, webhook_deliveries IN SHARE ROW EXCLUSIVE MODE

-- name: import_held
SELECT 'jobs', count(*) FROM jobs
UNION ALL SELECT 'schedules', count(*) FROM schedules
UNION ALL SELECT 'events', count(*) FROM job_events
UNION ALL SELECT 'webhook deliveries', count(*) FROM webhook_deliveries

-- name: import_cursors_clear
DELETE FROM cursors

-- name: import_columns
-- (generated columns are the database's to fill)
SELECT column_name FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = %s AND is_generated = 'NEVER'

-- name: import_copy
-- {table}, {columns}: from store/sqlite_export.COPIED and the target's own columns
COPY {table} ({columns}) FROM STDIN

-- name: import_sequence
-- {table}, {column}: from importer.IDENTITY; the sequence past the largest value copied
SELECT setval(pg_get_serial_sequence('{table}', '{column}'), max({column}))
FROM {table} HAVING max({column}) IS NOT NULL

-- Dependencies (store/dependencies.py): list parameters are arrays.

-- name: deps_mark
-- The jobs a new job runs after (the array) now have dependents; the ids that are jobs.
-- Their rows are locked in id order (as job_end_many ends jobs), so an end waits for
-- this submit's commit and then sees `dependents`, or this submit waits for the end and
-- then reads the job ended.
UPDATE jobs SET dependents = true
WHERE id IN (SELECT id FROM jobs WHERE id = ANY(%s) ORDER BY id FOR UPDATE)
RETURNING id

-- name: deps_insert
INSERT INTO job_deps (job_id, after_id, need) VALUES (%s, %s, %s)

-- name: deps_waiting
-- Blocked jobs that run after any of the jobs in the array, locked: two jobs one job runs
-- after, ended at once by two daemons, settle it one after the other, and the second
-- reads the first's end (else each would see the other still running, and it would
-- stay blocked).
SELECT j.id FROM jobs j
WHERE j.state = 'blocked' AND j.id IN (SELECT d.job_id FROM job_deps d WHERE d.after_id = ANY(%s))
ORDER BY j.id
FOR UPDATE OF j

-- name: deps_of
-- Every dependency of the jobs in the array with its job's state (NULL: deleted).
SELECT d.job_id, d.after_id, d.need, p.state FROM job_deps d LEFT JOIN jobs p ON p.id = d.after_id
WHERE d.job_id = ANY(%s)
ORDER BY d.job_id, d.after_id

-- name: deps_ready
-- A blocked job whose dependencies have ended: queued, or scheduled while its run_at is ahead.
UPDATE jobs SET state = CASE WHEN run_at > %s THEN 'scheduled' ELSE 'queued' END
WHERE id = %s AND state = 'blocked'
RETURNING state, attempts, queue

-- name: deps_cancel
-- A blocked job one of whose dependencies did not succeed as it needed to.
UPDATE jobs SET state = 'cancelled', finished_at = %s, error = %s
WHERE id = %s AND state = 'blocked'
RETURNING attempts, dependents

-- name: deps_revivable
-- (after_id, error) The jobs cancelled because the job they run after ended as the error
-- says (dlq retry of it takes them back: store/dependencies.revive), locked in id order
-- as deps_waiting locks.
SELECT j.id FROM jobs j
WHERE j.id IN (SELECT d.job_id FROM job_deps d WHERE d.after_id = %s)
  AND j.state = 'cancelled' AND j.error = %s
ORDER BY j.id
FOR UPDATE OF j

-- name: deps_revive
-- (id, error) A job cancelled as deps_revivable found it waits again for what it runs after.
UPDATE jobs SET state = 'blocked', finished_at = NULL, error = NULL
WHERE id = %s AND state = 'cancelled' AND error = %s
RETURNING attempts, dependents

-- name: deps_recancel
-- (error, id, old error) A job deps_revivable found that another dependency still rules
-- out: its error names that one now, so a retry of that one takes it back.
UPDATE jobs SET error = %s WHERE id = %s AND state = 'cancelled' AND error = %s

-- name: deps_list
-- The jobs one job runs after, with how each must end and where each is (NULL: deleted).
SELECT d.after_id, d.need, p.state FROM job_deps d LEFT JOIN jobs p ON p.id = d.after_id
WHERE d.job_id = %s ORDER BY d.after_id

-- name: blocked_ids
-- (queue, queue): `cancel --state blocked`, from jobs_blocked
SELECT id FROM jobs WHERE state = 'blocked' AND (%s::text IS NULL OR queue = %s::text)

-- name: lock_queues
-- (queues, now): the claim lock of each limited or rated queue this claim may take from
-- that has a job due, in name order, held to the commit: two daemons' claims of one such
-- queue go one after the other. Claims that find nothing due in it take no lock. Returns
-- the queues locked; running_in_queues counts next, in a statement of its own, whose
-- snapshot sees a claim committed while this one waited for the lock.
SELECT q FROM (
    SELECT q FROM unnest(%s::text[]) AS q
    WHERE EXISTS (SELECT 1 FROM jobs WHERE jobs.queue = q AND run_at <= %s
                  AND state IN ('queued', 'scheduled', 'retrying'))
    ORDER BY q
) AS due, LATERAL (SELECT pg_advisory_xact_lock(hashtextextended('jobrunner queue ' || q, 0))) AS l

-- name: running_in_queues
-- (queues): jobs running now in each of the queues, on every daemon
SELECT queue, count(*) FROM jobs WHERE state = 'running' AND queue = ANY(%s::text[])
GROUP BY queue

-- name: queue_rate_get
-- (queue): the window a rated queue's starts are counted in, and how many
SELECT window_start, starts FROM queue_rates WHERE queue = %s

-- name: queue_rate_add
-- (queue, window_start, starts): add a claim's starts, a new window starting from them;
-- never back to an earlier window (ratelimit.room)
INSERT INTO queue_rates (queue, window_start, starts) VALUES (%s, %s, %s)
ON CONFLICT (queue) DO UPDATE SET
    starts = CASE WHEN queue_rates.window_start >= excluded.window_start
                  THEN queue_rates.starts + excluded.starts ELSE excluded.starts END,
    window_start = greatest(queue_rates.window_start, excluded.window_start)

-- name: queue_rates
SELECT queue, window_start, starts FROM queue_rates

-- name: running_keys
-- (queue): the concurrency keys of the queue's running jobs, on every daemon, and how many
SELECT concurrency_key, count(*) FROM jobs
WHERE state = 'running' AND concurrency_key IS NOT NULL AND queue = %s
GROUP BY concurrency_key

-- name: keyed_candidates
-- (queue, now, full keys, limit): a keyed queue's due jobs, best first, but those whose
-- key is full; locked past those another daemon holds
SELECT id, priority, run_at, concurrency_key FROM jobs
WHERE state IN ('queued', 'scheduled', 'retrying') AND queue = %(queue)s
  AND run_at <= %(now)s
  AND (concurrency_key IS NULL OR NOT (concurrency_key = ANY(%(full)s::text[])))
ORDER BY priority DESC, run_at, id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED

-- name: claim_ids
-- (owner, now, ids): claim these jobs (picked and locked by keyed_candidates)
UPDATE jobs AS j
SET state = 'running', attempts = j.attempts + 1, owner = %(owner)s, started_at = %(now)s,
    cancel_requested = false, progress = NULL, progress_message = NULL, progress_at = NULL
WHERE j.id = ANY(%(ids)s) AND j.state IN ('queued', 'scheduled', 'retrying')
RETURNING {job_columns_j}
