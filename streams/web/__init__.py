"""The live experiment page that join stage 2 serves on ``--web-port``.

:mod:`streams.web.page` renders it (the report's tables and its series as inline SVG);
:mod:`streams.web.server` serves it with its JSON, ``/verdicts/`` included.
"""

from streams.web.page import live_run, render_body, render_page
from streams.web.server import LivePage, LiveServer, serve_page

__all__ = ["LivePage", "LiveServer", "live_run", "render_body", "render_page", "serve_page"]
