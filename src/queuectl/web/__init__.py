"""`queuectl web`: the dashboard, JSON API and /metrics (SPEC §7.7).

Its libraries (Starlette, uvicorn, Jinja2, prometheus_client) come with the `web` extra and are
imported only by the modules below this package that need them, never by the CLI's start-up.
"""
