"""The web dashboard that `jobrunner serve` shows at `/` (docs/architecture.md,
"Dashboard"): pages rendered on the server from the same operations the CLI and the API
call (`pages.py`), actions posted as forms with a CSRF token (`actions.py`), a login
cookie when the server has a token (`session.py`), and one small script of our own that
keeps a page live from the SSE feed (`static/app.js`). Nothing is fetched from elsewhere:
templates and assets ship in the wheel."""
