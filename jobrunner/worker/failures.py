"""How a Python job's failure is told: the error recorded, and whether it is retried.

A failure no retry can fix (the task cannot be imported or found, the stored call does
not fit its parameters, the result cannot be stored) is recorded as NOT_RETRIED and why;
everything else a job raises is its own failure, `Type: message`, retried while
attempts allow. Internal class names never reach the record.
"""

from __future__ import annotations

from jobrunner.jsonutil import depth_error, dumps, storable, storable_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from jobrunner.worker.protocol import JobSpec

RESULT_MAX_BYTES = 1 << 20


class NotRetryable(Exception):
    """A failure that no retry can fix (the task reference itself is wrong). Recorded as
    NOT_RETRIED and its message; the class name is never shown."""


# How the error of an attempt that was not retried begins (`dlq retry --all` leaves such
# jobs, store/queries.sql `dead_ids`; docs/jobs.md, "What happens to a job").
NOT_RETRIED = "not retried: "


def call_does_not_fit(exc: BaseException, fn: Callable[..., Any] | None, spec: JobSpec) -> bool:
    """Whether `exc` is Python refusing the call itself: the stored args do not fit the
    function's parameters. A TypeError raised by the call (no frame of the function
    below it) that the signature confirms; a TypeError raised inside is the job's."""
    if not isinstance(exc, TypeError) or fn is None:
        return False
    if exc.__traceback__ is None or exc.__traceback__.tb_next is not None:
        return False
    import inspect  # only here: a worker's jobs never pay for it

    try:
        inspect.signature(fn).bind(*spec.args, **spec.kwargs)
    except TypeError:
        return True
    except ValueError:  # no signature to read (some builtins)
        return False
    return False


def message_of(exc: BaseException) -> str:
    try:
        return str(exc) or type(exc).__name__
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the failure
        return "(its message cannot be shown)"


def result_json(value: Any) -> str | None:
    """A job's return value as the JSON text stored (None for None), or an error.

    The text, not the object, goes to the supervisor: an object of a class defined
    inside the task passes the JSON check but cannot be pickled, and the supervisor
    would encode it again anyway. Lone surrogates are escaped (jsonutil.storable)."""
    if value is None:
        return None
    try:
        text = dumps(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise NotRetryable(f"result is not JSON-serializable: {storable(str(exc))}") from None
    if len(text) > RESULT_MAX_BYTES:
        raise NotRetryable(
            f"result is {len(text)} bytes of JSON, more than the {RESULT_MAX_BYTES} allowed"
        )
    problem = depth_error(text)
    if problem is not None:
        raise NotRetryable(f"result is {problem}")
    return storable_json(text)


def describe(exc: BaseException) -> str:
    name = type(exc).__name__
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the failure
        message = "(its message cannot be shown)"
    return storable(f"{name}: {message}" if message else name)
