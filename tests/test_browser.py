"""The built book as a reader meets it: every page of ``_build/html`` opened in headless Chromium.

Run ``make book`` first, then ``make browser-test`` (or ``pytest -m browser``). The pages are
served on 127.0.0.1 by a thread of this process; Chromium runs with every host name but
127.0.0.1 unresolvable, so the test also proves the book works with no internet. On each page:

* every image loaded (``naturalWidth > 0``) and has alt text that is not a file name;
* no code block that the page shows scrolls sideways in the 1280-pixel window (the book's CSS
  makes the code column hold the 88 columns that ruff formats to; the package's docstrings on
  the API page and its source listings under ``_modules/`` are not checked);
* every math element typeset by MathJax (the build ships MathJax 2.7 in ``_static/mathjax``),
  no MathJax error, and no raw TeX (``$$``, ``\\(``, ``\\begin{...}``...) left in the text;
* no raw Markdown table syntax (a ``|---|`` delimiter row) in the text: every table rendered;
* every widget view drawn (where the page has widget views);
* no error in the console: no script exception, failed request or HTTP error;
* no request to another host, except the allowed ones (``ONLINE_ONLY``);
* every link to another file of the book resolves; chapters have their Colab launch button and
  the ``.ipynb`` download.

The widget manager and require.js, which the HTML loads from CDNs, are served from local copies
fetched from the npm registry at test time (``tools/offline_assets.py``; never committed): the
server rewrites the CDN addresses in the pages it serves. A full-page screenshot of every page
is saved to ``artifacts/screenshots/`` (git-ignored) for a person to look at.

Chromium is driven by Selenium through Debian's ChromeDriver (``/usr/bin/chromedriver``; no
Selenium Manager, no download): the console errors and the requests come from ChromeDriver's
``browser`` and ``performance`` logs, the full-page screenshots from the DevTools protocol
(``execute_cdp_cmd``). Without a built book, Chromium, ChromeDriver or selenium the test skips,
unless ``VMONF_REQUIRE_BROWSER=1`` (set by ``make browser-test``) turns the skip into a failure.
Install Chromium and ChromeDriver with ``tools/install_browser.sh``, selenium with ``make install``.
"""

from __future__ import annotations

import base64
import functools
import http.server
import importlib.util
import json
import math
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional
from urllib.parse import unquote, urlsplit

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("VMONF_BOOK_HTML", ROOT / "_build" / "html")).resolve()
SHOTS = Path(os.environ.get("VMONF_SCREENSHOTS", ROOT / "artifacts" / "screenshots"))
REQUIRED = os.environ.get("VMONF_REQUIRE_BROWSER", "") not in ("", "0", "false", "no")
WIDTH, HEIGHT, MAX_SHOT_HEIGHT = 1280, 1000, 16000
LOAD_TIMEOUT, READY_TIMEOUT = 90.0, 45.0

# Remote resources a page may load online that the offline test cannot: (URL, why it is fine).
ONLINE_ONLY: dict = {}  # none: the chapters link to Colab in plain text, with no remote badge image
# CDN prefixes the built pages load scripts from -> local routes served from npm packages.
CDN_ROUTES = {
    "https://cdn.jsdelivr.net/npm/": "/__cdn__/npm/",
    "https://unpkg.com/": "/__cdn__/npm/",
    "https://cdnjs.cloudflare.com/ajax/libs/require.js/": "/__cdn__/requirejs/",
}
MATH_OUTPUT = ".MathJax_CHTML, .mjx-chtml, mjx-container, .MathJax, .MathJax_SVG, .MathJax_Display"
# TeX that MathJax should have replaced: delimiters, environments, common macros, and $...$
# holding TeX-looking characters (a price like $5 does not match).
RAW_TEX = re.compile(
    r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\\end\{|\\frac|\\mathbb|\\mathcal|\\sum_|\\log\b"
    r"|\$[^$\n]*[\\^_{}][^$\n]*\$"
)

#: an ``alt`` that is only a file name (what an image gets when nobody wrote one)
IMAGE_FILE = re.compile(r"\.(png|jpe?g|gif|svg|webp)$", re.I)

#: a Markdown table's delimiter row left as text: the table did not render (e.g. a ``|`` inside
#: a cell that was not escaped, so the header and delimiter rows disagree)
RAW_TABLE = re.compile(r"\|\s*:?-{3,}:?\s*\|")


CHROMIUM_NAMES = (
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
)


def _executable(variable: str, *names: str) -> Optional[str]:
    """The first of $variable and ``names`` found on PATH."""
    for name in (os.environ.get(variable, ""), *names):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _pages() -> List[str]:
    if not (HTML / "index.html").is_file():
        return []
    skip = {"_static", "_sources", "_images", "_downloads"}
    return sorted(
        p.relative_to(HTML).as_posix()
        for p in HTML.rglob("*.html")
        if p.relative_to(HTML).parts[0] not in skip
    )


def _skip_or_fail(reason: str) -> None:
    if REQUIRED:
        pytest.fail(
            f"{reason} (VMONF_REQUIRE_BROWSER is set, so this is a failure, not a skip)"
        )
    pytest.skip(reason)


def _offline_assets():
    spec = importlib.util.spec_from_file_location(
        "offline_assets", ROOT / "tools" / "offline_assets.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- the local server


def _rewrite_cdn(html: str) -> str:
    for url, route in CDN_ROUTES.items():
        html = html.replace(url, route)

    def drop_integrity(
        match: "re.Match[str]",
    ) -> str:  # local copies differ from the CDN's bytes
        tag = match.group(0)
        return re.sub(r'\s+integrity="[^"]*"', "", tag) if "/__cdn__/" in tag else tag

    return re.sub(r"<script\b[^>]*>", drop_integrity, html)


def _cdn_specs(html: str) -> Dict[str, str]:
    """{route path prefix: npm spec} for every CDN script a page loads."""
    specs = {}
    for url in re.findall(r'<script[^>]+src="(https://[^"]+)"', html):
        for prefix, route in CDN_ROUTES.items():
            if url.startswith(prefix):
                local = route + url[len(prefix) :]
                spec, _ = _npm_spec(local)
                specs[local] = spec
    return specs


def _npm_spec(local_path: str):
    """'/__cdn__/npm/@scope/name@1.0/dist/x.js' -> ('@scope/name@1.0', 'dist/x.js')."""
    if local_path.startswith("/__cdn__/requirejs/"):
        version = local_path.split("/")[3]
        return f"requirejs@{version}", "require.js"
    rest = local_path[len("/__cdn__/npm/") :]
    parts = rest.split("/")
    n = 2 if parts[0].startswith("@") else 1
    spec, file = "/".join(parts[:n]), "/".join(parts[n:])
    if "@" not in spec.lstrip("@"):
        spec += "@latest"
    return unquote(spec), unquote(file)


class _Server:
    def __init__(self, root: Path, npm_package) -> None:
        self.root, self.npm_package = root, npm_package
        self.requests: List[tuple] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def log_request(self, code="-", size="-"):
                server.requests.append(
                    (self.path, int(code) if str(code).isdigit() else code)
                )

            def log_message(self, *args):
                pass

            def _send(self, body: bytes, ctype: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self):
                path = unquote(urlsplit(self.path).path)
                if path.startswith("/__cdn__/"):
                    try:
                        spec, file = _npm_spec(path)
                        target = server.npm_package(spec) / file
                    except Exception as err:  # reported as a 502 and a console error
                        self.send_error(502, f"cannot fetch {path} from npm: {err}")
                        return
                    if not target.is_file():
                        self.send_error(404, f"{file} is not in {spec}")
                        return
                    self._send(target.read_bytes(), self.guess_type(str(target)))
                    return
                local = root / path.lstrip("/")
                if local.is_dir():
                    local = local / "index.html"
                if local.suffix == ".html" and local.is_file():
                    body = _rewrite_cdn(local.read_text(encoding="utf-8")).encode(
                        "utf-8"
                    )
                    self._send(body, "text/html; charset=utf-8")
                    return
                super().do_GET()

            do_HEAD = do_GET

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------- Chromium through ChromeDriver

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # no internet: every host name but the test server's address fails at once
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--no-default-browser-check",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--lang=en-US",
    f"--window-size={WIDTH},{HEIGHT}",
]


def _viewport(height: int) -> dict:
    return {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False}


def _start_chromium(chromium: str, chromedriver: str):
    """Headless Chromium through Debian's ChromeDriver. A driver path is given, so Selenium
    Manager (which would download drivers) is never run. ChromeDriver keeps two logs per page:
    ``browser`` (the console: script exceptions, console.error, failed loads) and
    ``performance`` (the DevTools protocol's Network.* events)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.set_capability(
        "goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"}
    )
    options.add_experimental_option(
        "perfLoggingPrefs", {"enableNetwork": True, "enablePage": False}
    )
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    driver.set_page_load_timeout(LOAD_TIMEOUT)
    driver.set_script_timeout(READY_TIMEOUT + 15)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", _viewport(HEIGHT))
    return driver


def _open(driver, url: str, redirect: bool = False) -> None:
    """Go to ``url`` (through about:blank, so that the logs hold this page only) and wait for
    its load event; for a page that redirects, wait for the page it leads to as well."""
    driver.get("about:blank")
    driver.get_log("browser"), driver.get_log("performance")
    driver.get(url)
    if redirect:
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(driver, LOAD_TIMEOUT).until(
            lambda d: (
                d.current_url != url
                and d.execute_script("return document.readyState") == "complete"
            ),
            f"{url}: no redirect in {LOAD_TIMEOUT:.0f} s",
        )


def _evaluate(driver, expression: str) -> Any:
    """The value of a JavaScript expression (a promise is awaited: WebDriver's execute)."""
    return driver.execute_script("return " + expression.strip())


def _screenshot(driver, path: Path, height: int) -> None:
    """The whole page: the viewport is made as tall as the page (at most MAX_SHOT_HEIGHT) and
    left to settle first (capturing beyond a short viewport catches the layout mid-change).
    A taller page is captured in parts, ``name.png``, ``name.part2.png``, ... scrolling down."""
    total = max(HEIGHT, int(height))
    view = min(total, MAX_SHOT_HEIGHT)
    settle = "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r, 500))))"
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", _viewport(view))
    path.parent.mkdir(parents=True, exist_ok=True)
    for part in range(math.ceil(total / view)):
        _evaluate(driver, f"(window.scrollTo(0, {part * view}), {settle})")
        data = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
        target = (
            path if part == 0 else path.with_name(f"{path.stem}.part{part + 1}.png")
        )
        target.write_bytes(base64.b64decode(data["data"]))
    _evaluate(driver, "window.scrollTo(0, 0)")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", _viewport(HEIGHT))


# --------------------------------------------------------------------------- what a page must show

# Waits for MathJax (2 or 3) to finish and for widget views to be drawn, loads lazy images, then
# reports what the checks need. Runs inside the page; returns a JSON-able object.
PAGE_REPORT_JS = r"""
(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const deadline = Date.now() + %(ready_ms)d;
  const notes = [];
  const hasMath = document.querySelector('.math') !== null;
  if (hasMath) {
    while (Date.now() < deadline && !(window.MathJax && ((MathJax.Hub && MathJax.Hub.Register) ||
           (MathJax.startup && MathJax.startup.promise)))) await sleep(50);
    if (window.MathJax && MathJax.Hub && MathJax.Hub.Register) {
      await Promise.race([new Promise(r => MathJax.Hub.Register.StartupHook('End', r)), sleep(Math.max(0, deadline - Date.now()))]);
      await Promise.race([new Promise(r => MathJax.Hub.Queue([r])), sleep(Math.max(0, deadline - Date.now()))]);
    } else if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      await Promise.race([MathJax.startup.promise, sleep(Math.max(0, deadline - Date.now()))]);
    } else {
      notes.push('MathJax never loaded');
    }
  }
  const viewSel = 'script[type="application/vnd.jupyter.widget-view+json"]';
  const widgetShown = s => {
    const box = s.parentElement && s.parentElement.querySelector('.jupyter-widgets, .lm-Widget, .p-Widget');
    if (!box) return false;
    const r = box.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const views = Array.from(document.querySelectorAll(viewSel));
  while (Date.now() < deadline && views.some(v => !widgetShown(v))) await sleep(100);
  const imgs = Array.from(document.images);
  imgs.forEach(i => { if (i.loading === 'lazy') i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
    i.addEventListener('load', r, {once: true}); i.addEventListener('error', r, {once: true});
    setTimeout(r, 15000); })));
  const text = el => {
    const c = el.cloneNode(true);
    c.querySelectorAll('script, style, pre, code, textarea, .highlight, .MathJax_Preview, .MJX_Assistive_MathML, mjx-assistive-mml').forEach(e => e.remove());
    return c.textContent;
  };
  const maths = Array.from(document.querySelectorAll('.math'));
  const main = document.querySelector('main, article, [role=main]') || document.body;
  return {
    url: location.href,
    title: document.title,
    height: Math.max(document.documentElement.scrollHeight, document.body.scrollHeight),
    notes,
    images: imgs.map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0,
      alt: (i.getAttribute('alt') || '').trim()})),
    // code blocks a reader sees or can open that scroll sideways: closed toggles (collapsed
    // `hide-input` cells) are opened for the measurement and closed again; the docstrings
    // that autodoc renders (dl.py) are the package's, not the book's code column
    codeScrolls: (() => {
      const closed = Array.from(document.querySelectorAll('details:not([open])'));
      closed.forEach(d => { d.open = true; });
      const wide = Array.from(document.querySelectorAll('div.highlight pre'))
        .filter(p => p.clientWidth > 0 && !p.closest('dl.py'))
        .filter(p => p.scrollWidth > p.clientWidth + 1)
        .map(p => p.textContent.split('\n').reduce((a, b) => b.length > a.length ? b : a, ''))
        .map(l => `${l.length} characters: ${l.trim().slice(0, 70)}`);
      closed.forEach(d => { d.open = false; });
      return wide;
    })(),
    math: maths.length,
    mathUnrendered: maths.filter(m => !m.querySelector(%(math_output)s)).map(m => m.textContent.trim().slice(0, 100)),
    mathWithBackslash: maths.filter(m => text(m).includes('\\')).map(m => text(m).trim().slice(0, 100)),
    mathErrors: Array.from(document.querySelectorAll('.mjx-merror, .MathJax_Error, mjx-merror, .noError')).map(e => e.textContent.trim().slice(0, 100)),
    mathOutputs: document.querySelectorAll(%(math_output)s).length,
    pageText: text(main),
    widgets: views.length,
    widgetsShown: views.filter(widgetShown).length,
    widgetViews: views.map(v => { try { return JSON.parse(v.textContent).model_id; } catch (e) { return null; } }),
    widgetState: Array.from(document.querySelectorAll('script[type="application/vnd.jupyter.widget-state+json"]'))
      .map(s => { try { return JSON.parse(s.textContent).state || {}; } catch (e) { return {}; } }),
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
    launch: Array.from(document.querySelectorAll('a[href*="colab.research.google.com"]')).map(a => a.href),
    downloads: Array.from(document.querySelectorAll('a[href$=".ipynb"]')).map(a => a.href),
  };
})()
""" % {"ready_ms": int(READY_TIMEOUT * 1000), "math_output": json.dumps(MATH_OUTPUT)}


def _browser_favicon(url: str, base: str) -> bool:
    """Chromium asks for /favicon.ico by itself (the book declares no icon); a 404 there is not
    the page's doing and no reader sees it."""
    return url.startswith(base + "favicon.ico")


def _problems_in_console(console: List[dict], network: List[dict], base: str) -> tuple:
    """(errors, remote requests) from one page's ChromeDriver logs: ``console`` is the
    ``browser`` log, ``network`` the ``performance`` log (DevTools Network.* events)."""
    errors, remote, urls = [], [], {}
    for entry in network:
        event = json.loads(entry["message"])["message"]
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            urls[params["requestId"]] = url
            if not url.startswith((base, "data:", "blob:", "about:")):
                remote.append(url)
        elif method == "Network.loadingFailed":
            url = urls.get(params["requestId"], "?")
            if url not in ONLINE_ONLY and not params.get("canceled"):
                errors.append(f"request failed: {url} ({params.get('errorText')})")
        elif (
            method == "Network.responseReceived"
            and params["response"].get("status", 200) >= 400
        ):
            if not _browser_favicon(params["response"]["url"], base):
                errors.append(
                    f"HTTP {params['response']['status']}: {params['response']['url']}"
                )
    # SEVERE: an uncaught exception, console.error or console.assert, a failed load
    for entry in console:
        text = entry.get("message", "")
        if entry.get("level") != "SEVERE" or _browser_favicon(text, base):
            continue
        if any(text.startswith(url) for url in ONLINE_ONLY):
            continue
        errors.append(f"{entry.get('source', 'console')}: {text}"[:500])
    return sorted(set(errors)), sorted(set(remote))


def _shot_name(page: str) -> str:
    return page[: -len(".html")].replace("/", "__") + ".png"


def _shot_name(page: str) -> str:
    return page[: -len(".html")].replace("/", "__") + ".png"


# --------------------------------------------------------------------------- fixtures and tests

PAGES = _pages()


@functools.lru_cache(maxsize=None)
def _config() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def site():
    if not PAGES:
        _skip_or_fail(f"no built book at {HTML}: run `make book` first")
    assets = _offline_assets()
    specs = {}
    for page in PAGES:
        specs.update(_cdn_specs((HTML / page).read_text(encoding="utf-8")))
    for spec in sorted(set(specs.values())):  # fetch now, not while a page waits for it
        try:
            assets.npm_package(spec)
        except Exception as err:
            _skip_or_fail(
                f"cannot fetch {spec} from the npm registry for the offline pages: {err}"
            )
    for old in SHOTS.glob("*.png"):  # screenshots of this build only
        old.unlink()
    server = _Server(HTML, assets.npm_package)
    yield server
    server.close()


@pytest.fixture(scope="module")
def browser():
    chromium = _executable("CHROMIUM", *CHROMIUM_NAMES)
    chromedriver = _executable("CHROMEDRIVER", "chromedriver")
    if chromium is None or chromedriver is None:
        _skip_or_fail(
            "Chromium or ChromeDriver is not installed: run tools/install_browser.sh"
            " (Debian's chromium and chromium-driver)"
        )
    if importlib.util.find_spec("selenium") is None:
        _skip_or_fail("selenium is not installed: run `make install`")
    driver = _start_chromium(chromium, chromedriver)
    yield driver
    driver.quit()


def _console(driver, base: str) -> tuple:
    return _problems_in_console(
        driver.get_log("browser"), driver.get_log("performance"), base
    )


def _report(driver, site: _Server, page: str) -> tuple:
    redirects = re.search(
        r'http-equiv="refresh"[^>]*url=([^"]+)"',
        (HTML / page).read_text(encoding="utf-8"),
        re.I,
    )
    _open(
        driver, site.url + page, redirect=bool(redirects)
    )  # index.html leads to the intro
    report = _evaluate(driver, PAGE_REPORT_JS)
    if redirects:
        target = site.url + (Path(page).parent / redirects.group(1)).as_posix().lstrip(
            "./"
        )
        assert report["url"] == target, (
            f"{page} should lead to {target}, it led to {report['url']}"
        )
    SHOTS.mkdir(parents=True, exist_ok=True)
    _screenshot(driver, SHOTS / _shot_name(page), report["height"])
    errors, remote = _console(driver, site.url)
    return report, errors, remote


# Widget models that take input: on a static page they are drawn but do nothing. (Progress bars
# and outputs are not in this list: they only show.)
CONTROL_MODELS = re.compile(
    r"(Slider|Button|Dropdown|Text|Checkbox|ToggleButtons|RadioButtons|Select|Picker|Play)"
)


def _controls_shown(
    view_ids: List[Optional[str]], states: List[Dict[str, Any]]
) -> List[str]:
    """The input widgets among the page's widget views and their children (interact's sliders)."""
    models: Dict[str, Any] = {}
    for state in states:
        models.update(state)
    found, todo, seen = [], [v for v in view_ids if v], set()
    while todo:
        model_id = todo.pop()
        if model_id in seen or model_id not in models:
            continue
        seen.add(model_id)
        model = models[model_id]
        name = model.get("model_name", "")
        if CONTROL_MODELS.search(name):
            found.append(
                f"{name} {model.get('state', {}).get('description', '')!r}".strip()
            )
        children = model.get("state", {}).get("children", [])
        todo += [
            c[len("IPY_MODEL_") :]
            for c in children
            if isinstance(c, str) and c.startswith("IPY_MODEL_")
        ]
    return sorted(found)


def _local_file(url: str, base: str) -> Optional[Path]:
    if not url.startswith(base):
        return None
    path = unquote(urlsplit(url).path).lstrip("/")
    target = HTML / path
    return target / "index.html" if target.is_dir() or path == "" else target


@pytest.mark.parametrize(
    "page",
    PAGES
    or [
        pytest.param(
            "none",
            marks=pytest.mark.skipif(
                not REQUIRED, reason=f"no built book at {HTML}: run `make book` first"
            ),
        )
    ],
)
def test_page(page, site, browser):
    if page == "none":
        _skip_or_fail(f"no built book at {HTML}: run `make book` first")
    report, errors, remote = _report(browser, site, page)
    problems = list(report["notes"])
    problems += [
        f"image not loaded: {i['src']}"
        for i in report["images"]
        if not i["ok"] and i["src"] not in ONLINE_ONLY
    ]
    problems += [
        f"image without alt text (or with a file name for one): {i['src']}"
        for i in report["images"]
        if not i["alt"] or IMAGE_FILE.search(i["alt"])
    ]
    if not page.startswith("_modules/"):  # viewcode's listings of the package's source
        problems += [
            f"code scrolls sideways in a {WIDTH}-pixel window: {c}"
            for c in report["codeScrolls"]
        ]
    problems += [f"math not typeset: {m!r}" for m in report["mathUnrendered"]]
    problems += [
        f"raw TeX left in typeset math: {m!r}" for m in report["mathWithBackslash"]
    ]
    problems += [f"MathJax error: {m!r}" for m in report["mathErrors"]]
    if report["math"] and not report["mathOutputs"]:
        problems.append(f"{report['math']} math elements but no MathJax output")
    raw = list(RAW_TEX.finditer(report["pageText"]))
    for match in raw[:3]:
        context = " ".join(
            report["pageText"][max(0, match.start() - 40) : match.end() + 40].split()
        )
        problems.append(
            f"raw TeX in the text: ...{context}..."
            + (
                f" ({len(raw)} places in all)"
                if len(raw) > 3 and match is raw[0]
                else ""
            )
        )
    problems += [
        "raw Markdown table in the text: ..."
        + " ".join(report["pageText"][max(0, m.start() - 60) : m.end() + 20].split())
        + "..."
        for m in list(RAW_TABLE.finditer(report["pageText"]))[:3]
    ]
    controls = _controls_shown(report["widgetViews"], report["widgetState"])
    if controls:  # a static page cannot act on a control: show a figure instead (e.g. small multiples)
        problems.append(
            f"inert widget controls on a static page: {', '.join(controls)}"
        )
    if report["widgets"] != report["widgetsShown"]:
        problems.append(
            f"{report['widgets'] - report['widgetsShown']} of {report['widgets']} widget views not drawn"
        )
    problems += [f"console: {e}" for e in errors]
    problems += [f"needs the internet: {u}" for u in remote if u not in ONLINE_ONLY]
    missing = sorted(
        {
            u.split("#")[0]
            for u in report["links"]
            if (f := _local_file(u.split("#")[0].split("?")[0], site.url)) is not None
            and not f.exists()
        }
    )
    problems += [f"broken link: {u}" for u in missing]

    source = ROOT / Path(page).with_suffix(".ipynb")
    if (
        page.startswith("book/") and source.is_file()
    ):  # a chapter: Colab launch and .ipynb download
        repo = _config()["repository"]
        colab = (
            f"https://colab.research.google.com/github/{urlsplit(repo['url']).path.strip('/')}"
            f"/blob/{repo['branch']}/{Path(page).with_suffix('.ipynb').as_posix()}"
        )
        if colab not in report["launch"]:
            problems.append(
                f"no Colab launch button to {colab} (found {report['launch']})"
            )
        # the rocket button too: every Colab link names the path in the repository, not ./book/...
        problems += [
            f"Colab link not to {colab}: {u}" for u in report["launch"] if u != colab
        ]
        if not any(
            u.endswith(f"/_sources/{Path(page).with_suffix('.ipynb').as_posix()}")
            for u in report["downloads"]
        ):
            problems.append(f"no .ipynb download link (found {report['downloads']})")
    assert not problems, (
        f"{page} ({report['title']!r}, screenshot {SHOTS / _shot_name(page)}):\n  "
        + "\n  ".join(problems)
    )


def test_controls_are_found_inside_interacts_box():
    """What the page check calls an inert control: interact's sliders (children of a VBox), not a
    progress bar or an output area."""
    state = {
        "box": {
            "model_name": "VBoxModel",
            "state": {"children": ["IPY_MODEL_eps", "IPY_MODEL_out"]},
        },
        "eps": {
            "model_name": "FloatSliderModel",
            "state": {"description": "skew ε", "style": "IPY_MODEL_st"},
        },
        "st": {"model_name": "SliderStyleModel", "state": {}},
        "out": {"model_name": "OutputModel", "state": {}},
        "bar": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_p"]}},
        "p": {"model_name": "FloatProgressModel", "state": {"description": ""}},
    }
    assert _controls_shown(["box", "bar"], [state]) == ["FloatSliderModel 'skew ε'"]
    assert _controls_shown(["bar"], [state]) == []


def test_search_finds_pages(site, browser):
    """The search box works offline: a query for a word of the book lists pages."""
    if not PAGES:
        _skip_or_fail(f"no built book at {HTML}: run `make book` first")
    _open(browser, site.url + "search.html?q=mixture")
    found = _evaluate(
        browser,
        """
      (async () => {
        const deadline = Date.now() + 30000;
        const hits = () => document.querySelectorAll('#search-results li, ul.search li').length;
        while (Date.now() < deadline && hits() === 0) await new Promise(r => setTimeout(r, 100));
        return hits();
      })()""",
    )
    _screenshot(browser, SHOTS / "search__mixture.png", HEIGHT)
    errors, remote = _console(browser, site.url)
    assert found > 0, "searching for 'mixture' lists no page"
    assert not errors, errors
