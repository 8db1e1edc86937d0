-- Jobs ready now, best first, across every queue: a daemon serving all queues claims
-- with one walk of this index however many queues there are (store/sqlite.py job_claim).
CREATE INDEX jobs_queued ON jobs (priority DESC, run_at, id) WHERE state = 'queued';
