"""Example tasks for the demo (examples/demo.sh)."""

from __future__ import annotations

import hashlib

from jobrunner import current_job, task


@task(retries=2, timeout=60)
def count_primes(limit: int) -> int:
    """CPU-heavy: count the primes below `limit` with a plain sieve."""
    sieve = bytearray([1]) * limit
    sieve[0:2] = b"\x00\x00"
    for n in range(2, int(limit**0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytearray(len(range(n * n, limit, n)))
    found = sum(sieve)
    print(f"job {current_job().id}: {found} primes below {limit}")
    return found


def digest(text: str, rounds: int = 200_000) -> str:
    """CPU-heavy: iterate SHA-256 over a string."""
    value = text.encode()
    for _ in range(rounds):
        value = hashlib.sha256(value).digest()
    return value.hex()


def flaky_payment(order_id: int) -> None:
    """Fails every time, so it ends in the dead-letter queue after its retries."""
    job = current_job()
    print(f"charging order {order_id}, attempt {job.attempt}")
    raise ConnectionError(f"payment gateway refused order {order_id}")
