-- Progress a running job reports (jobrunner.progress(), or `::progress` lines).
ALTER TABLE jobs ADD COLUMN progress REAL;
ALTER TABLE jobs ADD COLUMN progress_message TEXT;
ALTER TABLE jobs ADD COLUMN progress_at REAL;

-- What each attempt cost and how its process ended.
ALTER TABLE attempts ADD COLUMN cpu_seconds REAL;
ALTER TABLE attempts ADD COLUMN max_rss_kb INTEGER;
ALTER TABLE attempts ADD COLUMN exit_code INTEGER;
ALTER TABLE attempts ADD COLUMN signal INTEGER;
