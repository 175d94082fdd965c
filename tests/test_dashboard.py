"""The published asv dashboard loads nothing from another host.

benchmarks/publish.py (what benchmarks/run.sh calls) runs ``asv publish`` on a tiny results
set written here by hand (two commits of a scratch git repository, one plain and one
parameterised benchmark, no benchmark is run) and points the CDN scripts and styles at the
vendored copies. Every published page, script and stylesheet is then scanned for external
loads. That the pages then draw their graphs in a browser is benchmarks/check_dashboard.py's
check (it needs Chromium).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.optional import need

ROOT = Path(__file__).resolve().parent.parent
PUBLISH = ROOT / "benchmarks" / "publish.py"
VENDOR = ROOT / "benchmarks" / "vendor"

need("asv", reason="asv is not installed (the bench extra; CI installs it)")
pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="asv publish needs git")

EXTERNAL = r"(?:https?:)?//[^\s\"'<>)]+"
# what makes a browser fetch: a loading tag's src/href/data, a CSS url() or @import
HTML_LOADS = re.compile(
    r"<(?:script|link|img|iframe|source|embed|object|audio|video)\b[^>]*?\b(?:src|href|data|poster)"
    rf"\s*=\s*[\"']\s*({EXTERNAL})",
    re.I | re.S,
)
CSS_LOADS = re.compile(rf"(?:url\(\s*[\"']?|@import\s+[\"'])\s*({EXTERNAL})", re.I)
# a script that fetches a script or a style from another host, or writes a tag that does
JS_LOADS = re.compile(rf"[\"']({EXTERNAL}\.(?:js|css|woff2?|ttf|eot)(?:\?[^\"']*)?)[\"']", re.I)

BENCHMARKS = {
    "bench_demo.time_step": {
        "code": "def time_step():\n    pass", "min_run_count": 2, "name": "bench_demo.time_step",
        "number": 0, "param_names": [], "params": [], "repeat": 0, "rounds": 2,
        "sample_time": 0.01, "type": "time", "unit": "seconds", "version": "1", "warmup_time": -1,
    },
    "bench_demo.Train.time_step": {
        "code": "class Train:\n    def time_step(self, backend):\n        pass", "min_run_count": 2,
        "name": "bench_demo.Train.time_step", "number": 0, "param_names": ["backend"],
        "params": [["'numpy'", "'torch'"]], "repeat": 0, "rounds": 2, "sample_time": 0.01,
        "type": "time", "unit": "seconds", "version": "1", "warmup_time": -1,
    },
    "version": 2,
}


def _git(repo: Path, *args: str, date: str | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    if date:
        env |= {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """A scratch project with two recorded commits, published by benchmarks/publish.py."""
    repo = tmp_path_factory.mktemp("dashboard")
    _git(repo, "init", "-q", "-b", "main")
    (repo / "asv.conf.json").write_text(json.dumps({
        "version": 1, "project": "demo", "project_url": "", "repo": ".", "dvcs": "git",
        "branches": ["main"], "environment_type": "existing", "pythons": ["same"],
        "benchmark_dir": "benchmarks", "results_dir": "results", "html_dir": "html",
    }))
    results = repo / "results"
    (results / "demo").mkdir(parents=True)
    (results / "benchmarks.json").write_text(json.dumps(BENCHMARKS))
    (results / "demo" / "machine.json").write_text(json.dumps({"machine": "demo", "version": 1}))
    for i, (date, scale) in enumerate([("2024-01-01T00:00:00Z", 1.0), ("2024-01-02T00:00:00Z", 1.3)]):
        (repo / "file.txt").write_text(str(i))
        _git(repo, "add", "file.txt")
        _git(repo, "commit", "-q", "-m", f"commit {i}", date=date)
        sha, stamp = _git(repo, "rev-parse", "HEAD"), int(_git(repo, "log", "-1", "--format=%ct")) * 1000
        (results / "demo" / f"{sha[:8]}-existing-py_demo.json").write_text(json.dumps({
            "commit_hash": sha, "env_name": "existing-py_demo", "date": stamp,
            "params": {"machine": "demo", "python": "3.11"}, "python": "3.11", "requirements": {},
            "env_vars": {}, "result_columns": ["result", "params", "version", "started_at", "duration"],
            "results": {
                "bench_demo.time_step": [[0.002 * scale], [], "1", stamp, 1.0],
                "bench_demo.Train.time_step": [[0.004 * scale, 0.003 * scale],
                                               [["'numpy'", "'torch'"]], "1", stamp, 1.0],
            },
            "durations": {}, "version": 2,
        }))
    proc = subprocess.run([sys.executable, str(PUBLISH), "--config", str(repo / "asv.conf.json")],
                          cwd=repo, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return repo / "html"


def _published_files(html: Path, *suffixes: str) -> list[Path]:
    return sorted(p for p in html.rglob("*") if p.suffix in suffixes)


def test_publish_writes_the_dashboard_with_graph_data(published):
    assert (published / "index.html").is_file()
    index = json.loads((published / "index.json").read_text())
    assert set(index["benchmarks"]) == {"bench_demo.time_step", "bench_demo.Train.time_step"}
    assert len(index["revision_to_hash"]) == 2
    assert (published / "graphs" / "summary" / "bench_demo.Train.time_step.json").is_file()


def test_no_published_file_loads_from_another_host(published):
    pages, scripts, styles = (_published_files(published, *s) for s in ((".html",), (".js",), (".css",)))
    assert pages and scripts and styles
    found = []
    for regex, files in ((HTML_LOADS, pages), (JS_LOADS, scripts), (CSS_LOADS, styles)):
        for path in files:
            found += [(str(path.relative_to(published)), url)
                      for url in regex.findall(path.read_text(encoding="utf-8", errors="replace"))]
    assert found == []


def test_every_local_script_and_style_exists(published):
    """Each <script src>/<link href> of index.html is a file in the published folder, the vendored
    libraries included (a missing one would send the page to asv's error.html)."""
    html = (published / "index.html").read_text()
    refs = re.findall(r"<script\b[^>]*\bsrc\s*=\s*\"([^\"]+)\"", html, re.S)
    refs += re.findall(r"<link\b[^>]*\bhref\s*=\s*\"([^\"]+)\"", html, re.S)
    assert sum(r.startswith("vendor/") for r in refs) == 10
    missing = [r for r in refs if not (published / r.split("?")[0]).is_file()]
    assert missing == []
    for css in _published_files(published / "vendor", ".css"):  # bootstrap's fonts
        for url in re.findall(r"url\(\s*[\"']?([^\"')?#]+)", css.read_text()):
            assert (css.parent / url).resolve().is_file(), url


def test_the_vendored_files_are_the_ones_asv_pins(published):
    """Where asv's template pins a CDN file with a Subresource Integrity hash, the vendored copy
    has that hash (asv 0.6.6's template; other versions may pin other files)."""
    import asv

    template = Path(asv.__file__).with_name("www") / "index.html"
    pins = re.findall(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"(https?://[^\"]+)\"[^>]*\bintegrity=\"([^\"]+)\"",
                      template.read_text())
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from publish import local_asset
    finally:
        sys.path.pop(0)
    import base64
    import hashlib

    checked = 0
    for url, integrity in pins:
        local = local_asset(url)
        assert local is not None, f"{url} is not vendored"
        algo, digest = integrity.split("-", 1)
        data = (published / local).read_bytes()
        if local.startswith("vendor/flot/"):  # the unminified sources, not cdnjs's build
            continue
        assert base64.b64encode(hashlib.new(algo, data).digest()).decode() == digest, local
        checked += 1
    assert checked >= 6 or not pins


def test_publish_refuses_an_unknown_external_asset(published, tmp_path):
    """An asv template that asks for a library not vendored here stops publish.py."""
    html = tmp_path / "html"
    shutil.copytree(published, html)
    page = html / "index.html"
    page.write_text(page.read_text().replace(
        "</head>", '<script src="https://cdn.example.invalid/other-1.0.js"></script></head>'))
    proc = subprocess.run([sys.executable, str(PUBLISH), "--no-publish", "--html-dir", str(html)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "https://cdn.example.invalid/other-1.0.js" in proc.stderr
