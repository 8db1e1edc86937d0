"""The PostgreSQL store (issue 15, in progress): its schema and migrations so far; the
store itself joins `open_store` once it passes the whole conformance suite
(docs/architecture.md, "PostgreSQL")."""
