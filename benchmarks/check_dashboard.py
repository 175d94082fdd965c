"""Check in a headless browser, with no network, that the published dashboard draws its graphs.

Serves the published HTML (``.asv/html`` by default) on 127.0.0.1, opens it in headless
Chromium with every other host made unresolvable (``--host-resolver-rules``), and checks:

- the page did not fall back to asv's error.html (what it shows when a script fails to load);
- Flot drew its canvases: the summary grid's thumbnails and one benchmark's graph page;
- Chromium's network log holds no request of the page's to a host other than 127.0.0.1
  (the browser's own background requests are told apart by their initiator and left out).

Screenshots of both pages go to --out (default ``.asv/dashboard-check``)::

    python3 benchmarks/publish.py            # or benchmarks/run.sh
    python3 benchmarks/check_dashboard.py    # exit 0: graphs drawn offline

Needs a Chromium (Debian: ``apt-get install chromium``; --browser to name another one).
Standard library only.
"""

from __future__ import annotations

import argparse
import http.server
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import quote, urlsplit

REPO = Path(__file__).resolve().parent.parent
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome", "chromium-headless-shell")
FLOT_CANVAS = re.compile(r"<canvas\b[^>]*class=\"flot-base\"")
ERROR_PAGE = "Can not determine continental origin of swallow"


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # the browser closing early: not ours
        pass


def serve(html_dir: Path) -> tuple[http.server.ThreadingHTTPServer, list[str]]:
    """A static server for html_dir on 127.0.0.1 (a free port), and the list of paths it served."""
    served: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(html_dir), **kwargs)

        def log_message(self, fmt, *args):  # keep the paths, print nothing
            served.append(self.path)

    server = _Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, served


def browser_cmd(browser: str, netlog: Path, profile: Path) -> list[str]:
    return [
        browser,
        "--headless",
        "--no-sandbox",  # root in a container
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        f"--user-data-dir={profile}",
        # no network: every host but the local server fails to resolve
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--log-net-log={netlog}",
        "--window-size=1400,1000",
        "--virtual-time-budget=15000",  # let the ajax loads and the plotting finish
    ]


def run_browser(cmd: list[str], timeout: float) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        raise RuntimeError(f"{cmd[0]} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.stdout


def page_requests(netlog: Path) -> list[str]:
    """URLs the page asked for, from Chromium's network log.

    A request that the page (or its scripts and styles) starts carries the page's origin as
    its initiator; the browser's own background requests (update checks, accounts) carry
    "not an origin" and are left out, as is the top-level navigation to the local server.
    """
    text = netlog.read_text(encoding="utf-8", errors="replace")
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # a log cut short: close the events list
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    starts = [e.get("params", {}) for e in log.get("events", []) if e.get("type") == start_job]
    return [p["url"] for p in starts if "url" in p and p.get("initiator", "not an origin") != "not an origin"]


def external(urls: list[str]) -> list[str]:
    return sorted({u for u in urls if urlsplit(u).hostname not in ("127.0.0.1", "localhost", None)})


def a_benchmark(html_dir: Path) -> str:
    """One benchmark that has a graph (a timing one when there is one), for the graph page."""
    names = sorted(json.loads((html_dir / "index.json").read_text())["benchmarks"])
    with_graph = [n for n in names if (html_dir / "graphs" / "summary" / f"{n}.json").exists()]
    if not with_graph:
        raise RuntimeError(f"{html_dir} has no graph data: run the benchmarks, then publish")
    timed = [n for n in with_graph if n.rsplit(".", 1)[-1].startswith("time_")]
    return (timed or with_graph)[0]


def check(html_dir: Path, out: Path, browser: str, timeout: float = 120) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    server, served = serve(html_dir)
    base = f"http://127.0.0.1:{server.server_address[1]}/index.html"
    bench = a_benchmark(html_dir)
    pages = {"grid": base, "graph": f"{base}#{quote(bench)}"}
    report: dict = {"html_dir": str(html_dir), "benchmark": bench, "pages": {}}
    try:
        for name, url in pages.items():
            with tempfile.TemporaryDirectory() as tmp:
                netlog = Path(tmp) / "netlog.json"
                cmd = browser_cmd(browser, netlog, Path(tmp) / "profile")
                dom = run_browser([*cmd, "--dump-dom", url], timeout)
                requested = page_requests(netlog)
                shot = out / f"dashboard-{name}.png"
                cmd = browser_cmd(browser, Path(tmp) / "netlog2.json", Path(tmp) / "profile2")
                run_browser([*cmd, f"--screenshot={shot}", url], timeout)
            report["pages"][name] = {
                "url": url,
                "flot_canvases": len(FLOT_CANVAS.findall(dom)),
                "error_page": ERROR_PAGE in dom,
                "page_requests": len(requested),
                "external_requests": external(requested),
                "screenshot": str(shot),
            }
    finally:
        server.shutdown()
    report["served_vendor_files"] = sorted({p for p in served if "/vendor/" in p})
    report["ok"] = all(
        p["flot_canvases"] > 0 and not p["error_page"] and not p["external_requests"]
        for p in report["pages"].values()
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html_dir", nargs="?", type=Path, default=REPO / ".asv" / "html")
    parser.add_argument("--out", type=Path, default=REPO / ".asv" / "dashboard-check")
    parser.add_argument("--browser", help="Chromium executable (default: the first on PATH)")
    args = parser.parse_args(argv)
    browser = args.browser or next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        print("check_dashboard.py: no Chromium on PATH (apt-get install chromium)", file=sys.stderr)
        return 2
    report = check(args.html_dir.resolve(), args.out.resolve(), browser)
    print(json.dumps(report, indent=2))
    print("check_dashboard.py: " + ("graphs drawn with no network" if report["ok"] else "FAILED"))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
