-- Named queries of the SQLite store. Each starts with a `-- name: NAME` line.
-- `{job_columns}` expands to the column list a Job is built from.

-- name: job_insert
INSERT INTO jobs (state, task, command, args, kwargs, queue, priority, max_attempts, retries,
                  backoff, timeout, created_at, run_at, key, schedule, scheduled_for, options)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: job_insert_keyed
INSERT INTO jobs (state, task, command, args, kwargs, queue, priority, max_attempts, retries,
                  backoff, timeout, created_at, run_at, key, schedule, scheduled_for, options)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING
RETURNING id

-- name: job_id_by_key
SELECT id FROM jobs WHERE key = ?

-- name: job_state
SELECT state FROM jobs WHERE id = ?

-- name: job_get
SELECT {job_columns} FROM jobs WHERE id = ?

-- name: ready_queues
-- A loose index scan over jobs_ready: one probe per distinct queue, not per job, and no
-- more than ?1 of them.
WITH RECURSIVE q(name) AS (
    SELECT (SELECT min(queue) FROM jobs
            WHERE state IN ('queued', 'scheduled', 'retrying'))
    UNION ALL
    SELECT (SELECT min(queue) FROM jobs
            WHERE state IN ('queued', 'scheduled', 'retrying') AND queue > q.name)
    FROM q WHERE q.name IS NOT NULL
    LIMIT ?1
)
SELECT name FROM q WHERE name IS NOT NULL

-- name: claim_candidates
SELECT id, priority, run_at FROM jobs
WHERE state IN ('queued', 'scheduled', 'retrying') AND queue = ? AND run_at <= ?
ORDER BY priority DESC, run_at, id
LIMIT ?

-- name: claim_queued_anywhere
-- The best queued jobs of every queue but those named (capped queues, claimed apart).
SELECT id, priority, run_at FROM jobs
WHERE state = 'queued' AND queue NOT IN (SELECT value FROM json_each(?1))
ORDER BY priority DESC, run_at, id
LIMIT ?2

-- name: claim_due_anywhere
-- Delayed jobs and retries that fell due, oldest first (jobs_due: never the future ones).
SELECT id, priority, run_at, queue FROM jobs
WHERE state IN ('scheduled', 'retrying') AND run_at <= ?1
ORDER BY run_at
LIMIT ?2

-- name: claim_jobs
UPDATE jobs
SET state = 'running', attempts = attempts + 1, owner = ?, started_at = ?, cancel_requested = 0,
    progress = NULL, progress_message = NULL, progress_at = NULL
WHERE id IN (SELECT value FROM json_each(?)) AND state IN ('queued', 'scheduled', 'retrying')
RETURNING {job_columns}

-- name: next_due
SELECT min(run_at) FROM jobs WHERE state IN ('scheduled', 'retrying')

-- name: end_attempt
-- Fencing: only the owner of this very attempt may end it. ?10 is 1 when the attempt
-- does not count (interrupted, or never started: lifecycle.after_attempt).
UPDATE jobs
SET state = ?1, attempts = attempts - ?10, run_at = coalesce(?2, run_at),
    result = ?3, error = ?4, started_at = coalesce(?5, started_at), finished_at = ?6,
    owner = NULL, cancel_requested = 0,
    progress = CASE WHEN ?1 = 'succeeded' THEN 1.0 ELSE progress END
WHERE id = ?7 AND state = 'running' AND attempts = ?8 AND owner IS ?9
RETURNING dependents

-- name: attempt_insert
INSERT INTO attempts (job_id, attempt, outcome, started_at, finished_at, error, traceback, owner,
                      cpu_seconds, max_rss_kb, exit_code, signal)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: release
-- Hand back a claimed job that never started: the claim did not count as an attempt.
UPDATE jobs
SET state = 'queued', attempts = attempts - 1, owner = NULL, started_at = NULL,
    cancel_requested = 0
WHERE id = ? AND state = 'running' AND attempts = ? AND owner = ?
RETURNING attempts

-- name: running_orphans
-- Running jobs of no registered daemon (run daemons_dead_delete first), never those of
-- the rescuer itself (?1).
SELECT {job_columns} FROM jobs
WHERE state = 'running' AND owner IS NOT ?1
  AND (owner IS NULL OR owner NOT IN (SELECT id FROM daemons))

-- name: daemons_dead_delete
-- Forget the daemons a rescuer judged dead (a JSON array of ids), never itself (?2).
DELETE FROM daemons WHERE id IN (SELECT value FROM json_each(?1)) AND id IS NOT ?2

-- name: cancel_waiting
UPDATE jobs SET state = 'cancelled', finished_at = ?, error = 'cancelled before it started'
WHERE id = ? AND state IN ('blocked', 'queued', 'scheduled', 'retrying')
RETURNING attempts, dependents

-- name: cancel_request
UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND state = 'running'

-- name: cancel_requests
SELECT id, attempts FROM jobs WHERE state = 'running' AND owner = ? AND cancel_requested = 1

-- name: dead_retry
UPDATE jobs
SET state = 'queued', max_attempts = attempts + retries + 1, run_at = ?, finished_at = NULL,
    error = NULL, result = NULL
WHERE id = ? AND state = 'dead'
RETURNING attempts, dependents

-- name: dead_ids
-- `dlq retry --all` leaves the jobs that failed for good (worker/failures.py NOT_RETRIED)
SELECT id FROM jobs WHERE state = 'dead' AND state IN ('succeeded', 'dead', 'cancelled')
  AND substr(coalesce(error, ''), 1, 13) != 'not retried: '
ORDER BY id

-- name: ended_delete
-- The IN repeats the partial index's condition: `state = ?` alone cannot prove it,
-- and the prune would scan the whole table.
DELETE FROM jobs
WHERE id IN (SELECT id FROM jobs WHERE state = ? AND finished_at < ?
             AND state IN ('succeeded', 'dead', 'cancelled') LIMIT ?)
RETURNING id

-- name: ended_delete_ids
-- The jobs named that have ended (a job still waiting or running is left alone).
DELETE FROM jobs
WHERE id IN (SELECT value FROM json_each(?)) AND state IN ('succeeded', 'dead', 'cancelled')
RETURNING id

-- name: ended_count
-- What ended_delete would delete, without a limit (prune --dry-run, its confirmation).
SELECT count(*) FROM jobs
WHERE state = ? AND finished_at < ? AND state IN ('succeeded', 'dead', 'cancelled')

-- name: waiting_ids
-- Served by jobs_ready (the waiting jobs only, never the history); the IN repeats its
-- condition. No ORDER BY: sorting by id would make SQLite walk the whole table instead.
SELECT id FROM jobs
WHERE state = ?1 AND state IN ('queued', 'scheduled', 'retrying') AND (?2 IS NULL OR queue = ?2)

-- name: running_ids
-- Served by jobs_running.
SELECT id FROM jobs WHERE state = 'running' AND (?1 IS NULL OR queue = ?1)

-- name: attempts_delete
DELETE FROM attempts WHERE job_id IN (SELECT value FROM json_each(?))

-- name: attempts_of
SELECT job_id, attempt, outcome, started_at, finished_at, error, traceback, owner,
       cpu_seconds, max_rss_kb, exit_code, signal
FROM attempts WHERE job_id = ? ORDER BY rowid

-- name: counts
-- Kept by triggers (migrations/0009_job_counts.sql): a few rows, however many jobs.
SELECT state, queue, n FROM job_counts WHERE n > 0

-- name: job_list
-- Every state: the primary key walked newest first from ?4 down, stopping at the limit.
-- ?1 queue, ?2 task (the function, or a [tasks.NAME]), ?3 limit; NULL: any. ?4: the
-- largest id listed (below a page's cursor; SQLite's largest rowid for all).
SELECT {job_columns} FROM jobs
WHERE id <= ?4
  AND (?1 IS NULL OR queue = ?1)
  AND (?2 IS NULL OR task = ?2 OR json_extract(options, '$.task_name') = ?2)
ORDER BY id DESC
LIMIT ?3

-- name: job_search
-- The dashboard's filter over a window: the :window newest jobs below :before (the
-- primary key walked), never the whole table; the caller goes on from the window's end.
-- :text is matched as typed and as JSON writes it (:text_json: quotes, non-ASCII escaped).
-- {{what}}, {{tail}}: the job's columns and the page's order and limit, or its id alone
-- (every match, for a bulk action: store/search.py).
SELECT {{what}} FROM (
    SELECT * FROM jobs WHERE id < :before ORDER BY id DESC LIMIT :window
)
WHERE (:states IS NULL OR state IN (SELECT value FROM json_each(:states)))
  AND (:queue IS NULL OR queue = :queue)
  AND (:task IS NULL OR task = :task OR json_extract(options, '$.task_name') = :task)
  AND (:text IS NULL
       OR instr(args, :text) OR instr(kwargs, :text) OR instr(coalesce(command, ''), :text)
       OR instr(args, :text_json) OR instr(kwargs, :text_json)
       OR instr(coalesce(command, ''), :text_json))
  AND (:since IS NULL OR created_at >= :since)
  AND (:until IS NULL OR created_at < :until)
{{tail}}

-- name: job_search_window
-- How many jobs the window held, and its lowest id (where the next window starts).
SELECT count(*), min(id) FROM (
    SELECT id FROM jobs WHERE id < :before ORDER BY id DESC LIMIT :window
)

-- name: job_list_in_states
-- {{ids}}: one job_list_ids_in_state per state asked for, joined by UNION ALL.
SELECT {job_columns} FROM jobs
WHERE id IN ({{ids}})
ORDER BY id DESC
LIMIT ?3

-- name: job_list_ids_in_state
-- One state's newest ids, read from the partial index that holds that state (never a
-- walk of the whole table): {{index}} and {{condition}} come from
-- sqlite_sql.LIST_INDEXES; the condition repeats the index's own, which SQLite needs
-- to use it.
SELECT id FROM (
    SELECT id FROM jobs INDEXED BY {{index}}
    WHERE {{condition}}
      AND id <= ?4
      AND (?1 IS NULL OR queue = ?1)
      AND (?2 IS NULL OR task = ?2 OR json_extract(options, '$.task_name') = ?2)
    ORDER BY id DESC
    LIMIT ?3
)

-- name: recent_failures
-- The newest dead jobs down jobs_ended, and the retrying ones (few) down jobs_due; never
-- every dead job sorted (a DLQ of 50,000 took 70 ms). The IN repeats each index's WHERE.
SELECT {job_columns} FROM (
    SELECT * FROM (
        SELECT * FROM jobs
        WHERE state IN ('succeeded', 'dead', 'cancelled') AND state = 'dead'
          AND error IS NOT NULL
        ORDER BY finished_at DESC LIMIT ?1)
    UNION ALL
    SELECT * FROM (
        SELECT * FROM jobs
        WHERE state IN ('scheduled', 'retrying') AND state = 'retrying'
          AND error IS NOT NULL
        ORDER BY run_at DESC LIMIT ?1)
)
ORDER BY coalesce(finished_at, run_at) DESC
LIMIT ?1

-- name: daemon_upsert
INSERT INTO daemons (id, host, pid, started_at, heartbeat_at, lease_until, workers, queues,
                     node)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,
                               lease_until = excluded.lease_until

-- name: daemon_heartbeat
UPDATE daemons SET heartbeat_at = ?, lease_until = ? WHERE id = ?

-- name: daemon_expire
UPDATE daemons SET lease_until = 0 WHERE id = ?

-- name: daemon_delete
DELETE FROM daemons WHERE id = ?

-- name: daemon_list
SELECT id, host, pid, started_at, heartbeat_at, lease_until, workers, queues, node
FROM daemons ORDER BY started_at

-- name: schedule_list
SELECT s.name, s.last_fire, s.paused,
       (SELECT j.id FROM jobs j WHERE j.schedule = s.name
        ORDER BY j.scheduled_for DESC LIMIT 1) AS last_job
FROM schedules s ORDER BY s.name

-- name: schedule_create
INSERT INTO schedules (name, last_fire, paused, updated_at) VALUES (?, ?, 0, ?)
ON CONFLICT (name) DO NOTHING

-- name: schedule_advance
-- Compare-and-set: only the daemon that read `last_fire` may move it on.
UPDATE schedules SET last_fire = ?1, updated_at = ?2
WHERE name = ?3 AND last_fire IS ?4 AND paused = 0

-- name: schedule_set_paused
INSERT INTO schedules (name, last_fire, paused, updated_at) VALUES (?1, ?2, ?3, ?2)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused,
    last_fire = CASE WHEN excluded.paused THEN last_fire ELSE excluded.last_fire END,
    updated_at = excluded.updated_at

-- name: schedule_states
-- One row per name in the JSON array ?1, in its order, whether or not a daemon has seen the
-- schedule: its last job is read from the jobs (jobs_fire), not from its row, so a manual
-- run of a schedule with no row yet is shown all the same.
SELECT n.value, s.last_fire, coalesce(s.paused, 0),
       (SELECT j.id FROM jobs j WHERE j.schedule = n.value
        ORDER BY j.scheduled_for DESC LIMIT 1) AS last_job
FROM json_each(?1) n LEFT JOIN schedules s ON s.name = n.value
ORDER BY n.key

-- name: schedule_last_jobs
-- What an overlap = "skip" schedule waits for: the job of its latest fire at or before ?2
-- (its last fire) and every job after it, which are manual runs (`schedules run`, marked in
-- options, scheduled for when they were made). A skip schedule fires only when all of
-- these have ended, so no earlier job can still be open. Reads jobs_fire from ?2 back over
-- the manual runs to the fire's job, then forward: a few rows, however long the history.
SELECT {job_columns} FROM jobs
WHERE schedule = ?1 AND scheduled_for >= coalesce(
    (SELECT scheduled_for FROM jobs
     WHERE schedule = ?1 AND scheduled_for <= ?2
       AND json_extract(CASE WHEN json_valid(options) THEN options END, '$.manual') IS NOT 1
     ORDER BY scheduled_for DESC LIMIT 1), ?2)
ORDER BY scheduled_for

-- name: job_insert_fire
INSERT INTO jobs (state, task, command, args, kwargs, queue, priority, max_attempts, retries,
                  backoff, timeout, created_at, run_at, key, schedule, scheduled_for, options)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (schedule, scheduled_for) WHERE schedule IS NOT NULL DO NOTHING
RETURNING id

-- name: job_progress
-- Fenced like a result: only the attempt that is running may report.
UPDATE jobs SET progress = ?, progress_message = ?, progress_at = ?
WHERE id = ? AND state = 'running' AND attempts = ? AND owner = ?

-- name: ended_per_minute
-- Jobs that ended after ?1, by final state and minute after ?1 (the overview's chart):
-- range scans of jobs_ended, as ended_since.
SELECT state, CAST((finished_at - ?1) / 60 AS INTEGER) AS minute, count(*) FROM jobs
WHERE state IN ('succeeded', 'dead', 'cancelled') AND finished_at > ?1
GROUP BY state, minute

-- name: ended_since
-- Three range scans of jobs_ended (one per final state); the IN repeats its condition.
SELECT state, count(*) FROM jobs
WHERE state IN ('succeeded', 'dead', 'cancelled') AND finished_at > ?
GROUP BY state

-- name: running_jobs
-- Served by jobs_running: the running jobs only, never the ended history.
SELECT {job_columns} FROM jobs WHERE state = 'running'
ORDER BY started_at, id
LIMIT ?

-- name: wal_checkpoint
-- Copies the WAL into the database and truncates it to zero bytes. Run with no busy
-- wait: a reader or writer in the way makes it a PASSIVE checkpoint (busy = 1).
PRAGMA wal_checkpoint(TRUNCATE)

-- name: vacuum_into
-- A consistent snapshot, compacted, written to a new (or empty) file.
VACUUM INTO ?

-- name: auto_vacuum_incremental
-- Free pages stay in the file until incremental_vacuum returns them. Takes effect on a
-- database with no tables yet, or at the next VACUUM.
PRAGMA auto_vacuum = INCREMENTAL

-- name: vacuum
-- Rewrites the whole file without its free pages (the write lock held throughout).
VACUUM

-- name: free_pages
PRAGMA freelist_count

-- name: incremental_vacuum
-- Up to {{pages}} free pages moved to the end of the file and cut off (auto_vacuum
-- incremental only; elsewhere nothing).
PRAGMA incremental_vacuum({{pages}})

-- name: integrity_check
-- Every page read and checked: one row 'ok', or rows naming up to 100 problems.
PRAGMA integrity_check

-- name: integrity_check_table
-- The same for one table and its indexes.
SELECT * FROM pragma_integrity_check(?)

-- name: table_names
SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name

-- name: event_insert
INSERT INTO job_events (at, job_id, attempt, type, state, data) VALUES (?, ?, ?, ?, ?, ?)

-- name: events_of_inserted
-- The `job.queued`/`job.scheduled` events of the jobs ?2..?3 just inserted in this
-- transaction, in ?1 of them (?4: the type for that state): one statement per batch.
INSERT INTO job_events (at, job_id, attempt, type, state, data)
SELECT created_at, id, 0, ?4, state,
       CASE WHEN schedule IS NULL THEN NULL
            ELSE json_object('schedule', schedule, 'scheduled_for', scheduled_for) END
FROM jobs WHERE id BETWEEN ?2 AND ?3 AND state = ?1

-- name: events_after
-- The feed from a seq on (a walk of the primary key).
SELECT seq, at, job_id, attempt, type, state, data FROM job_events
WHERE seq > ?1 ORDER BY seq LIMIT ?2

-- name: events_of_job_after
SELECT seq, at, job_id, attempt, type, state, data FROM job_events
WHERE job_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3

-- name: events_last_seq
SELECT coalesce(max(seq), 0) FROM job_events

-- name: events_prune_upto
-- The newest seq among the oldest ?1 events that are older than ?2: retention deletes up
-- to it, a bounded batch at a time, never scanning the feed's recent end.
-- Never past the webhooks cursor: an event the dispatcher has not read yet is kept.
SELECT max(seq) FROM (SELECT seq, at FROM job_events ORDER BY seq LIMIT ?1)
WHERE at < ?2 AND seq <= (SELECT seq FROM cursors WHERE name = 'webhooks')

-- name: events_delete_upto
DELETE FROM job_events WHERE seq <= ?

-- name: data_version
-- Changes when another connection commits (sqlite_watch.py): cheap, it reads the WAL index.
PRAGMA data_version

-- name: lease_acquire
-- Take the lease `name` (?1) for `owner` (?2) until ?3 + ?4 when nobody holds it, it
-- expired at ?3, or `owner` holds it already (then it is renewed). A row back: held.
INSERT INTO leases (name, owner, expires_at) VALUES (?1, ?2, ?3 + ?4)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE leases.owner = excluded.owner OR leases.expires_at <= ?3
RETURNING owner

-- name: lease_renew
UPDATE leases SET expires_at = ?3 + ?4 WHERE name = ?1 AND owner = ?2

-- name: lease_release
DELETE FROM leases WHERE name = ?1 AND owner = ?2

-- name: leases_of_daemons_delete
-- A daemon that stopped, or was judged dead (a JSON array of ids), holds no lease.
DELETE FROM leases WHERE owner IN (SELECT value FROM json_each(?1))

-- name: lease_holder
SELECT owner FROM leases WHERE name = ?1

-- == webhooks (sqlite_webhooks.py; docs/architecture.md, "Webhooks") =====================

-- name: cursor_get
SELECT seq FROM cursors WHERE name = ?1

-- name: cursor_move
-- Compare-and-set: moves `name` from ?2 to ?3; no change when another dispatcher moved it.
UPDATE cursors SET seq = ?3 WHERE name = ?1 AND seq = ?2

-- name: webhook_delivery_insert
-- A delivery made twice (the same event to the same URL) is one row.
INSERT OR IGNORE INTO webhook_deliveries
    (msg_id, event_seq, job_id, url, event_type, payload, state, next_at, created_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7)

-- name: webhook_claim
-- Take up to ?4 due deliveries for `owner` ?2 until ?3: per URL at most its room, from
-- the JSON array ?6 of [url, room] pairs (the dispatcher's URLs with sends in flight),
-- else ?5; none for a disabled endpoint. A lease that ran out (its dispatcher died)
-- makes a delivery due again.
WITH room (url, n) AS (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?6)
)
UPDATE webhook_deliveries SET owner = ?2, lease_until = ?3
WHERE id IN (
    SELECT id FROM (
        SELECT id, url, next_at,
               row_number() OVER (PARTITION BY url ORDER BY next_at, id) AS n
        FROM (
            SELECT id, url, next_at FROM webhook_deliveries INDEXED BY webhook_deliveries_due
            WHERE state = 'pending' AND next_at <= ?1
              AND (lease_until IS NULL OR lease_until <= ?1)
              AND url NOT IN (SELECT url FROM webhook_endpoints)
              AND url NOT IN (SELECT url FROM room WHERE n <= 0)
            ORDER BY next_at LIMIT 1000
        )
    ) AS ranked
    WHERE ranked.n <= coalesce((SELECT room.n FROM room WHERE room.url = ranked.url), ?5)
    ORDER BY next_at, id LIMIT ?4
)
RETURNING id, msg_id, event_seq, job_id, url, event_type, payload, state, attempts, next_at,
          owner, lease_until, created_at, ended_at, last_status, last_error

-- name: webhook_next_due
-- When the next delivery falls due (the dispatcher sleeps until then, or a wake-up).
SELECT min(max(next_at, coalesce(lease_until, 0)))
FROM webhook_deliveries INDEXED BY webhook_deliveries_due
WHERE state = 'pending' AND url NOT IN (SELECT url FROM webhook_endpoints)

-- name: webhook_delivery_end
-- An attempt's end, fenced: only while `owner` ?2 holds the delivery. ?3 the state after
-- (pending again with next_at ?4, or delivered/failed at ?5).
UPDATE webhook_deliveries
SET state = ?3, attempts = attempts + 1, next_at = ?4, owner = NULL, lease_until = NULL,
    ended_at = CASE WHEN ?3 = 'pending' THEN NULL ELSE ?5 END, last_status = ?6, last_error = ?7
WHERE id = ?1 AND owner = ?2 AND state = 'pending'

-- name: webhook_attempt_insert
INSERT INTO webhook_attempts (delivery_id, at, outcome, status, body, error, duration)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)

-- name: webhook_deliveries_list
-- Newest first, from a page's cursor (ids below ?4) down; ?2 a state, or NULL (?1 unused).
SELECT id, msg_id, event_seq, job_id, url, event_type, payload, state, attempts, next_at,
       owner, lease_until, created_at, ended_at, last_status, last_error
FROM webhook_deliveries
WHERE ?1 IS NULL AND (?2 IS NULL OR state = ?2) AND id < ?4
ORDER BY id DESC LIMIT ?3

-- name: webhook_deliveries_of_job
-- One job's deliveries, newest first (?2 a state or NULL).
SELECT id, msg_id, event_seq, job_id, url, event_type, payload, state, attempts, next_at,
       owner, lease_until, created_at, ended_at, last_status, last_error
FROM webhook_deliveries INDEXED BY webhook_deliveries_job
WHERE job_id = ?1 AND (?2 IS NULL OR state = ?2) AND id < ?4
ORDER BY id DESC LIMIT ?3

-- name: webhook_delivery_get
SELECT id, msg_id, event_seq, job_id, url, event_type, payload, state, attempts, next_at,
       owner, lease_until, created_at, ended_at, last_status, last_error
FROM webhook_deliveries WHERE id = ?1

-- name: webhook_attempts_of
SELECT delivery_id, at, outcome, status, body, error, duration FROM webhook_attempts
WHERE delivery_id = ?1 ORDER BY id

-- name: webhook_redeliver
-- Send again from the start of the retry schedule, with the same webhook-id. A delivery
-- being sent right now is left to finish.
UPDATE webhook_deliveries
SET state = 'pending', attempts = 0, next_at = ?2, ended_at = NULL
WHERE id = ?1 AND owner IS NULL

-- name: webhook_counts
SELECT state, count(*) FROM webhook_deliveries GROUP BY state

-- name: webhook_endpoint_disable
INSERT INTO webhook_endpoints (url, disabled_at, reason) VALUES (?1, ?2, ?3)
ON CONFLICT (url) DO UPDATE SET disabled_at = excluded.disabled_at, reason = excluded.reason

-- name: webhook_endpoint_enable
DELETE FROM webhook_endpoints WHERE url = ?1

-- name: webhook_endpoints_disabled
SELECT url, disabled_at, reason FROM webhook_endpoints ORDER BY url

-- name: webhook_prune_ids
-- Up to ?2 ended deliveries that ended before ?1 (retention).
SELECT id FROM webhook_deliveries
WHERE state IN ('delivered', 'failed') AND ended_at < ?1 ORDER BY id LIMIT ?2

-- name: webhook_deliveries_delete
DELETE FROM webhook_deliveries WHERE id IN (SELECT value FROM json_each(?1))

-- name: webhook_attempts_delete
DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT value FROM json_each(?1))

-- name: webhook_events
-- The events of the types in the JSON array ?3 after ?1, up to ?2 (the newest seq when
-- the read began), oldest first, each with its job's queue and callback (what routing
-- needs, without decoding whole jobs; NULL queue: the job is gone).
SELECT e.seq, e.at, e.job_id, e.attempt, e.type, e.state, e.data, j.queue,
       CASE WHEN json_valid(j.options) THEN json_extract(j.options, '$.callback') END
FROM job_events AS e LEFT JOIN jobs AS j ON j.id = e.job_id
WHERE e.seq > ?1 AND e.seq <= ?2 AND e.type IN (SELECT value FROM json_each(?3))
ORDER BY e.seq LIMIT ?4

-- name: read_begin
-- A read transaction: every query until read_end sees one snapshot (WAL).
BEGIN DEFERRED

-- name: read_end
COMMIT

-- == a file whose jobs moved to another database (store/sqlite_export.py) ==============

-- name: export_columns
SELECT name FROM pragma_table_info(?1) ORDER BY cid

-- name: export_rows
-- {table}: one of sqlite_export.COPIED, never user input
SELECT * FROM {{table}}

-- name: retired_get
-- A file `jobrunner copy --to` moved: where to (the URL without its password), and when.
SELECT owner, expires_at FROM leases WHERE name = 'jobrunner.retired'

-- name: retired_set
INSERT INTO leases (name, owner, expires_at) VALUES ('jobrunner.retired', ?1, ?2)

-- Dependencies (store/dependencies.py): list parameters are JSON arrays here.

-- name: deps_mark
-- The jobs a new job runs after (?1) now have dependents; the ids that are jobs.
UPDATE jobs SET dependents = 1 WHERE id IN (SELECT value FROM json_each(?1)) RETURNING id

-- name: deps_insert
INSERT INTO job_deps (job_id, after_id, need) VALUES (?, ?, ?)

-- name: deps_waiting
-- Blocked jobs that run after any of the jobs ?1 (job_deps_after, then each job's row).
SELECT DISTINCT d.job_id FROM job_deps d JOIN jobs j ON j.id = d.job_id
WHERE d.after_id IN (SELECT value FROM json_each(?1)) AND j.state = 'blocked'
ORDER BY d.job_id

-- name: deps_of
-- Every dependency of the jobs ?1 with its job's state (NULL: deleted).
SELECT d.job_id, d.after_id, d.need, p.state FROM job_deps d LEFT JOIN jobs p ON p.id = d.after_id
WHERE d.job_id IN (SELECT value FROM json_each(?1))
ORDER BY d.job_id, d.after_id

-- name: deps_ready
-- A blocked job whose dependencies have ended: queued, or scheduled while its run_at is ahead.
UPDATE jobs SET state = CASE WHEN run_at > ?1 THEN 'scheduled' ELSE 'queued' END
WHERE id = ?2 AND state = 'blocked'
RETURNING state, attempts, queue

-- name: deps_cancel
-- A blocked job one of whose dependencies did not succeed as it needed to.
UPDATE jobs SET state = 'cancelled', finished_at = ?1, error = ?2
WHERE id = ?3 AND state = 'blocked'
RETURNING attempts, dependents

-- name: deps_revivable
-- The jobs cancelled because the job ?1, which they run after, ended as the error ?2 says
-- (dlq retry of ?1 takes them back: store/dependencies.revive).
SELECT d.job_id FROM job_deps d JOIN jobs j ON j.id = d.job_id
WHERE d.after_id = ?1 AND j.state = 'cancelled' AND j.error = ?2
ORDER BY d.job_id

-- name: deps_revive
-- A job cancelled as deps_revivable found it waits again for what it runs after.
UPDATE jobs SET state = 'blocked', finished_at = NULL, error = NULL
WHERE id = ?1 AND state = 'cancelled' AND error = ?2
RETURNING attempts, dependents

-- name: deps_recancel
-- A job deps_revivable found that another dependency still rules out: its error names
-- that one now (?1), so a retry of that one takes it back.
UPDATE jobs SET error = ?1 WHERE id = ?2 AND state = 'cancelled' AND error = ?3

-- name: deps_list
-- The jobs one job runs after, with how each must end and where each is (NULL: deleted).
SELECT d.after_id, d.need, p.state FROM job_deps d LEFT JOIN jobs p ON p.id = d.after_id
WHERE d.job_id = ? ORDER BY d.after_id

-- name: blocked_ids
-- `cancel --state blocked`: from jobs_blocked, never the history.
SELECT id FROM jobs INDEXED BY jobs_blocked WHERE state = 'blocked' AND (?1 IS NULL OR queue = ?1)

-- name: running_in_queues
-- Jobs running now in each of the queues ?1 (a JSON array), on every daemon: what a
-- queue's `concurrency` limit is held against (jobs_running holds only running jobs).
SELECT queue, count(*) FROM jobs INDEXED BY jobs_running
WHERE state = 'running' AND queue IN (SELECT value FROM json_each(?1))
GROUP BY queue

-- name: queue_rate_get
-- (queue): the window a rated queue's starts are counted in, and how many
SELECT window_start, starts FROM queue_rates WHERE queue = ?

-- name: queue_rate_add
-- (queue, window_start, starts): add a claim's starts, a new window starting from them;
-- never back to an earlier window (ratelimit.room)
INSERT INTO queue_rates (queue, window_start, starts) VALUES (?1, ?2, ?3)
ON CONFLICT (queue) DO UPDATE SET
    starts = CASE WHEN window_start >= excluded.window_start THEN starts + excluded.starts
                  ELSE excluded.starts END,
    window_start = max(window_start, excluded.window_start)

-- name: queue_rates
SELECT queue, window_start, starts FROM queue_rates

-- name: running_keys
-- (queue): the concurrency keys of the queue's running jobs, on every daemon, and how many
SELECT concurrency_key, count(*) FROM jobs INDEXED BY jobs_running_keys
WHERE state = 'running' AND concurrency_key IS NOT NULL AND queue = ?1
GROUP BY concurrency_key

-- name: keyed_candidates
-- (queue, now, full keys as a JSON array, limit): a keyed queue's due jobs, best first,
-- but those whose key is full (walks jobs_ready like claim_candidates)
SELECT id, priority, run_at, concurrency_key FROM jobs
WHERE state IN ('queued', 'scheduled', 'retrying') AND queue = ?1 AND run_at <= ?2
  AND (concurrency_key IS NULL OR concurrency_key NOT IN (SELECT value FROM json_each(?3)))
ORDER BY priority DESC, run_at, id
LIMIT ?4
