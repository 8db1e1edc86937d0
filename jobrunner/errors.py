"""Errors a user sees. An exception's docstring is its default message (procrastinate)."""

from __future__ import annotations


class JobrunnerError(Exception):
    """jobrunner failed."""

    exit_code = 1

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class UsageError(JobrunnerError):
    """Bad input: malformed JSON, an unknown task, a bad duration or config."""

    exit_code = 2


class ConfigError(UsageError):
    """The configuration file is invalid."""


class NotFound(UsageError):
    """No such thing: a job, a webhook delivery (404 over HTTP)."""


class JobNotFound(NotFound):
    """No job with that id."""


class NotADatabase(JobrunnerError):
    """The file is not a jobrunner database; it was left untouched."""

    exit_code = 2


class DatabaseRetired(JobrunnerError):
    """The database file was copied to another database (`jobrunner copy --to`): it is
    read, never written again; nothing was written."""

    exit_code = 2


class StoreUnavailable(JobrunnerError):
    """The database could not be written (locked for too long, disk full or I/O error)."""

    exit_code = 3


class StoreWriteFailed(StoreUnavailable):
    """The database could not be written (disk full or an I/O error); the change was
    rolled back, so nothing was written. Retryable once the cause is fixed."""


class DatabaseUnusable(StoreUnavailable):
    """The database can no longer be used by this process; retrying cannot help."""


class DatabaseCorrupt(DatabaseUnusable):
    """The database file is damaged (SQLite found a malformed page); nothing was changed.
    `jobrunner check` lists the damage; restore the database from a backup."""


class DatabaseMoved(DatabaseUnusable):
    """The database file was deleted or replaced while this process had it open: what it
    writes goes to a file nobody else sees."""
