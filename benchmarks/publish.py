"""Publish the asv dashboard so that it renders with no network.

asv's page template loads jQuery, Flot, Bootstrap and three small plugins from CDNs. This
runs ``asv publish``, copies ``benchmarks/vendor/`` (those files, committed with their
licences) to ``<html_dir>/vendor/`` and points every CDN ``<script>``/``<link>`` of the
published HTML at the copy, then fails if any page still loads a script, style, font or image
from another host::

    python3 benchmarks/publish.py                  # asv publish + localise (.asv/html)
    python3 benchmarks/publish.py --config X.json  # another asv configuration
    python3 benchmarks/publish.py --no-publish     # only localise an already published html_dir

Arguments it does not know go to ``asv publish``. ``benchmarks/run.sh`` calls it; serve the
result with ``asv preview`` (or any static server: the pages fetch JSON, so file:// does not
work in Chromium). Standard library only: it runs this interpreter's asv (``python -m asv``),
else ``asv`` on PATH.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

VENDOR = Path(__file__).resolve().with_name("vendor")
REPO = VENDOR.parent.parent

# External URL (matched with re.search) -> the file under vendor/ that replaces it. The
# versions are in the patterns on purpose: an asv template that asks for another version
# stops publish.py instead of silently getting this one.
ASSETS: list[tuple[str, str]] = [
    (r"/jquery-3\.3\.1(\.min)?\.js$", "jquery/jquery-3.3.1.min.js"),
    (r"/flot/0\.8\.3/jquery\.flot(\.min)?\.js$", "flot/jquery.flot.js"),
    (r"/flot/0\.8\.3/jquery\.flot\.time(\.min)?\.js$", "flot/jquery.flot.time.js"),
    (r"/flot/0\.8\.3/jquery\.flot\.selection(\.min)?\.js$", "flot/jquery.flot.selection.js"),
    (r"/flot/0\.8\.3/jquery\.flot\.categories(\.min)?\.js$", "flot/jquery.flot.categories.js"),
    (r"/flot-orderbars@1\.0\.0/js/jquery\.flot\.orderBars\.js$", "flot-orderbars/jquery.flot.orderBars.js"),
    (r"/stupidtable/1\.0\.1/stupidtable(\.min)?\.js$", "stupidtable/stupidtable.min.js"),
    (r"/blueimp-md5/2\.19\.0/js/md5(\.min)?\.js$", "blueimp-md5/md5.min.js"),
    (r"/bootstrap@3\.1\.1/dist/js/bootstrap(\.min)?\.js$", "bootstrap/js/bootstrap.min.js"),
    (r"/bootstrap@3\.1\.1/dist/css/bootstrap(\.min)?\.css$", "bootstrap/css/bootstrap.min.css"),
]

EXTERNAL = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
# Tags that make the browser fetch something (an <a href> is a link the reader may follow,
# not a load, and is left alone).
LOADING_TAG = re.compile(r"<(script|link|img|iframe|source|embed|object|audio|video)\b[^>]*>", re.I | re.S)
URL_ATTR = re.compile(r"""\b(src|href|data|poster)\s*=\s*(["'])(.*?)\2""", re.I | re.S)
DROPPED_ATTR = re.compile(r"""\s+(integrity|crossorigin|referrerpolicy)(\s*=\s*(["']).*?\3)?""", re.I | re.S)
CSS_URL = re.compile(r"""(?:url\(\s*["']?|@import\s+["'])([^"')\s]+)""", re.I)


class ExternalAssetError(RuntimeError):
    """A published page still loads something from another host."""


def asv_config(path: Path) -> dict:
    """asv.conf.json as a dict (asv allows whole-line // comments, json does not)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return json.loads("\n".join(line for line in lines if not line.lstrip().startswith("//")))


def local_asset(url: str) -> str | None:
    """The vendor/ path that replaces an external URL, or None when it is not vendored."""
    for pattern, local in ASSETS:
        if re.search(pattern, url.split("?")[0].split("#")[0]):
            return f"vendor/{local}"
    return None


def _rewrite_tag(tag: str, unknown: list[str]) -> str:
    def attr(m: re.Match) -> str:
        name, quote, url = m.groups()
        if not EXTERNAL.match(url):
            return m.group(0)
        local = local_asset(url)
        if local is None:
            unknown.append(url)
            return m.group(0)
        return f"{name}={quote}{local}{quote}"

    new = URL_ATTR.sub(attr, tag)
    if new != tag:  # served from here now: no SRI (Flot differs from cdnjs's build), no CORS
        new = DROPPED_ATTR.sub("", new)
    return new


def localise_html(text: str) -> tuple[str, list[str]]:
    """The page with its CDN tags pointed at vendor/, and the external URLs left unmapped."""
    unknown: list[str] = []
    return LOADING_TAG.sub(lambda m: _rewrite_tag(m.group(0), unknown), text), unknown


def external_loads(html_dir: Path) -> list[tuple[str, str]]:
    """(file, url) for everything in html_dir's pages and styles that loads from another host."""
    found = []
    for path in sorted(html_dir.rglob("*")):
        if path.suffix not in (".html", ".htm", ".css"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        rel = str(path.relative_to(html_dir))
        if path.suffix == ".css":
            found += [(rel, u) for u in CSS_URL.findall(text) if EXTERNAL.match(u)]
            continue
        for tag in LOADING_TAG.finditer(text):
            found += [(rel, u) for _, _, u in URL_ATTR.findall(tag.group(0)) if EXTERNAL.match(u)]
        for block in re.findall(r"<style\b[^>]*>(.*?)</style>|style\s*=\s*\"([^\"]*)\"", text, re.I | re.S):
            found += [(rel, u) for u in CSS_URL.findall("".join(block)) if EXTERNAL.match(u)]
    return found


def localise(html_dir: Path) -> list[str]:
    """Copy vendor/ into html_dir and rewrite its pages; returns the rewritten pages' names."""
    html_dir = Path(html_dir)
    if not (html_dir / "index.html").is_file():
        raise FileNotFoundError(f"{html_dir}/index.html is missing: run asv publish first")
    target = html_dir / "vendor"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(VENDOR, target)
    changed, unknown = [], []
    for page in sorted(html_dir.glob("*.htm*")):
        text = page.read_text(encoding="utf-8")
        new, missing = localise_html(text)
        unknown += missing
        if new != text:
            page.write_text(new, encoding="utf-8")
            changed.append(page.name)
    left = external_loads(html_dir)
    if unknown or left:
        raise ExternalAssetError(
            "published pages still load from other hosts (vendor these under benchmarks/vendor "
            "and add them to ASSETS in benchmarks/publish.py): "
            + ", ".join(sorted({f"{f}: {u}" for f, u in left} | set(unknown)))
        )
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "asv.conf.json", help="asv configuration")
    parser.add_argument("--html-dir", "-o", type=Path, help="output folder (default: html_dir of the config)")
    parser.add_argument("--no-publish", action="store_true", help="only localise the html_dir")
    args, asv_args = parser.parse_known_args(argv)
    config = args.config.resolve()
    html_dir = (args.html_dir or config.parent / asv_config(config).get("html_dir", "html")).resolve()
    if not args.no_publish:
        # the asv of this interpreter when it has one (a venv not on PATH), else asv on PATH
        asv = [sys.executable, "-m", "asv"] if importlib.util.find_spec("asv") else ["asv"]
        cmd = [*asv, "publish", "--config", str(config), "--html-dir", str(html_dir), *asv_args]
        rc = subprocess.call(cmd, cwd=config.parent)
        if rc:
            return rc
    try:
        changed = localise(html_dir)
    except (ExternalAssetError, FileNotFoundError) as err:
        print(f"publish.py: {err}", file=sys.stderr)
        return 1
    print(f"publish.py: {html_dir} loads its scripts and styles from vendor/ "
          f"(rewritten: {', '.join(changed) or 'none, already local'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
