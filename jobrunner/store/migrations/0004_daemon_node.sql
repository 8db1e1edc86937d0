-- Where each daemon runs: hostname, boot id and pid namespace (jobrunner/node.py). A
-- peer's pid is looked up only from the same node; NULL (an older daemon): never.
ALTER TABLE daemons ADD COLUMN node TEXT;
