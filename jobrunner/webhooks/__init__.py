"""Signed webhooks from a durable outbox (docs/architecture.md, "Webhooks")."""
