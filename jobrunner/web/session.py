"""Who may use the dashboard, and proof that a form came from it.

A browser cannot send `Authorization: Bearer`, so with a token the login form trades it
for a session cookie: `ISSUED.SIGNATURE`, an HMAC of the issue time keyed by a secret
derived from the token (changing the token ends every session; servers that share a token
accept each other's cookies). Without a token the server listens on loopback only, and a
page hands out the same kind of cookie unasked, keyed by a secret of this process.

Every action is a POST carrying `csrf`, an HMAC of the session cookie under the same
secret: another site can make the browser post, but it can read neither the cookie
(HttpOnly, SameSite=Strict) nor our pages, so it cannot know the value.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

COOKIE = "jobrunner_session"
MAX_AGE = 12 * 3600  # seconds a login lasts


class Sessions:
    """Issues and checks session cookies and CSRF tokens. `token`: the server's, or None
    (then a secret of this process)."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        seed = token.encode() if token is not None else secrets.token_bytes(32)
        self._key = hashlib.sha256(b"jobrunner dashboard\0" + seed).digest()

    def _sign(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    def login_ok(self, given: str) -> bool:
        """Whether `given` is the token (compared in constant time)."""
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def issue(self, now: float) -> str:
        issued = str(int(now))
        return f"{issued}.{self._sign('session.' + issued)}"

    def valid(self, cookie: str | None, now: float) -> bool:
        """A cookie this server (or one with its token) issued, not yet expired."""
        if not cookie:
            return False
        issued, _, signature = cookie.partition(".")
        if not issued.isdigit() or not hmac.compare_digest(
            signature, self._sign("session." + issued)
        ):
            return False
        return 0 <= now - int(issued) <= MAX_AGE

    def csrf(self, cookie: str) -> str:
        return self._sign("csrf." + cookie)

    def csrf_ok(self, cookie: str | None, given: str) -> bool:
        return cookie is not None and hmac.compare_digest(given, self.csrf(cookie))
