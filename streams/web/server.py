"""Join stage 2's web server: the live experiment page and its JSON.

Routes (``GET`` only):

- ``/``: the live page (HTML, server-rendered; works without the script too),
- ``/live.json``: ``{"version", "html"}``; the page's script polls it and swaps the body
  in when ``version`` moved,
- ``/verdicts/``: the latest report per experiment (JSON, as before),
- ``/static/live.js``, ``/static/live.css``, ``/favicon.svg``.

A strict Content-Security-Policy allows nothing but this server's own script, style
and JSON, so even a string that escaped escaping could not run. The page is rendered
once per new snapshot, never per request.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from streams.join.experiments import ExperimentsFile
from streams.join.recent import RecentReports
from streams.web.page import STYLE, live_run, render_body, render_page

if TYPE_CHECKING:
    from streams.join.engine import JoinWorker

__all__ = ["LivePage", "LiveServer", "serve_page"]

log = logging.getLogger(__name__)

SCRIPT = """"use strict";
(function () {
  const main = document.getElementById("live");
  const status = document.getElementById("status");
  const every = Number(main.dataset.refreshMs) || 2000;
  let version = main.dataset.version;
  async function poll() {
    try {
      const response = await fetch("live.json", { cache: "no-store" });
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      const data = await response.json();
      if (String(data.version) !== version) {
        version = String(data.version);
        main.innerHTML = data.html;  // rendered and escaped by the server
        main.dataset.version = version;
      }
      status.textContent = "live, checked " + new Date().toLocaleTimeString();
      status.className = "";
    } catch (error) {
      status.textContent = "cannot reach the join agent (" + error.message + "); retrying";
      status.className = "stale";
    }
    setTimeout(poll, every);
  }
  setTimeout(poll, every);
})();
"""

FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<circle cx="8" cy="8" r="7" fill="#1f5fbf"/></svg>'
)

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class LivePage:
    """What the page shows, and a cache of its last rendering.

    Parameters
    ----------
    experiments
        The experiments file the join judges (primary metrics, KPIs).
    recent
        Stage 2's recent snapshots and alerts.
    latest
        Returns the latest report per experiment (``/verdicts/``).
    title
        The page's heading.

    Examples
    --------
    >>> from streams.records import MetricsSnapshot
    >>> exps = ExperimentsFile.parse('''
    ... [[experiments]]
    ... name = "e<1>"
    ... model = "m"
    ... live_version = "v1"
    ... candidate = "v2"
    ... ''')
    >>> recent = RecentReports()
    >>> page = LivePage(exps, recent, dict)
    >>> recent.add_snapshot(MetricsSnapshot("e<1>", "m", "v1", "v2", 0, {}, (), "continue", ""))
    >>> version, html = page.body()
    >>> version, "e&lt;1&gt;" in html, "e<1>" in html
    (1, True, False)
    """

    experiments: ExperimentsFile
    recent: RecentReports
    latest: Callable[[], Mapping[str, Any]]
    title: str = "shadow-eval: live experiments"

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rendered: tuple[int, str] | None = None

    @classmethod
    def of(cls, worker: JoinWorker) -> LivePage:
        """The page of a join worker running stage 2."""
        judge = worker.judge
        if judge is None:
            raise ValueError("the live page is served by the judge stage (--stage judge or both)")
        return cls(judge.experiments, judge.recent, lambda: dict(judge.latest))

    def body(self) -> tuple[int, str]:
        """``(version, html of <main>)``, re-rendered only when a report came in."""
        with self._lock:
            version = self.recent.version
            if self._rendered is None or self._rendered[0] != version:
                run = live_run(
                    self.experiments, self.recent.snapshots(), self.recent.alerts(), self.title
                )
                self._rendered = (version, render_body(run))
            return self._rendered

    def document(self) -> str:
        version, _ = self.body()
        run = live_run(self.experiments, self.recent.snapshots(), self.recent.alerts(), self.title)
        return render_page(run, version)


class LiveServer:
    """The running server: its address, and :meth:`stop`."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self.host, self.port = str(server.server_address[0]), int(server.server_address[1])
        self.url = f"http://{self.host}:{self.port}/"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _routes(page: LivePage) -> dict[str, Callable[[], tuple[str, bytes]]]:
    def live_json() -> tuple[str, bytes]:
        version, html = page.body()
        return "application/json", json.dumps({"version": version, "html": html}).encode()

    return {
        "/": lambda: ("text/html; charset=utf-8", page.document().encode()),
        "/live.json": live_json,
        "/verdicts": lambda: ("application/json", json.dumps(dict(page.latest())).encode()),
        "/static/live.js": lambda: ("text/javascript; charset=utf-8", SCRIPT.encode()),
        "/static/live.css": lambda: ("text/css; charset=utf-8", STYLE.encode()),
        "/favicon.svg": lambda: ("image/svg+xml", FAVICON.encode()),
    }


def serve_page(page: LivePage, port: int, host: str = "127.0.0.1") -> LiveServer:
    """Serve ``page`` on ``host:port`` (0: a free port) from a daemon thread.

    Examples
    --------
    >>> import json, urllib.request
    >>> table = {"name": "e", "model": "m", "live_version": "v1", "candidate": "v2"}
    >>> exps = ExperimentsFile.from_dict({"experiments": [table]})
    >>> server = serve_page(LivePage(exps, RecentReports(), dict), 0)
    >>> server.url.startswith("http://127.0.0.1:")
    True
    >>> with urllib.request.urlopen(server.url + "live.json") as answer:
    ...     json.load(answer)["version"]
    0
    >>> server.stop()
    """
    routes = _routes(page)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            route = routes.get(path if path == "/" else path.rstrip("/"))
            if route is None:
                self.send_error(404, "not found: try / or /verdicts/")
                return
            try:
                content_type, body = route()
            except Exception:  # a rendering bug must not take the join down
                log.exception("web: rendering %s failed", path)
                self.send_error(500, "rendering failed (see the join's log)")
                return
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("web: " + format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="web", daemon=True)
    thread.start()
    return LiveServer(server)
