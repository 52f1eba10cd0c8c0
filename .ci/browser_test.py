"""The built book in a real browser (issue 17.2): what a reader's Chromium shows.

Run by ``.ci/browser.sh``, which builds nothing: it serves the HTML that ``jupyter-book
build book/`` wrote, on 127.0.0.1, and sets

* ``BOOK_URL``: where the HTML is served;
* ``BOOK_CONFIG``: the ``_config.yml`` the HTML was built with (what is configured);
* ``SCREENSHOTS``: where one full-page screenshot per page is written;
* ``CHROMIUM``: the browser (Debian's ``/usr/bin/chromium``).

This file lives outside ``testpaths`` (``.ci/`` is never collected by a plain ``pytest``):
it needs a built book and a browser, and runs only through the script.

The network is cut (issue 25.5): every request that leaves the served book is refused
(recorded, and a failure) and Chromium's proxy is a closed port on 127.0.0.1, as a reader
offline would see it. Every page listed in ``book/_toc.yml`` is checked for: no console
error and no uncaught exception, no failed or external request, every ``<img>`` decoded,
MathJax typeset wherever the page has math (and wherever its source has display math) by
the book's own copy under ``_static/mathjax/``, with its fonts loaded, a sidebar that
links every chapter, the launch buttons that the configuration asks for (pointing at that
notebook's path) or none, and, on pages whose notebook has a widget, its static figure.
The search page must find a word of each chapter's title and list that chapter.
"""
from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest
import yaml

try:
    import playwright.sync_api as pw
except ImportError:  # a missing driver is an error of the set-up, never a skip
    pytest.exit("playwright is not installed: run .ci/browser.sh, which installs it", 2)

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
BOOK_URL = os.environ.get("BOOK_URL", "").rstrip("/")
CONFIG = Path(os.environ.get("BOOK_CONFIG", ROOT / "_config.yml"))
SCREENSHOTS = Path(os.environ.get("SCREENSHOTS", ROOT / "_build" / "screenshots"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
MATHJAX_ROOT = f"{BOOK_URL}/_static/mathjax/"  # book/_ext/offline_mathjax.py copies it there
TIMEOUT_MS = 120_000  # one page, under a loaded CI machine

if not BOOK_URL:
    pytest.exit("BOOK_URL is not set: run .ci/browser.sh, which serves the built book", 2)


def toc_docs() -> list[str]:
    """Every document of book/_toc.yml, root first, in reading order."""
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    docs = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                docs.append(e["file"])
            walk(e.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return docs


DOCS = toc_docs()
CHAPTERS = DOCS[1:]


def source_of(doc: str) -> Path:
    for suffix in (".md", ".ipynb"):
        if (BOOK / f"{doc}{suffix}").is_file():
            return BOOK / f"{doc}{suffix}"
    raise FileNotFoundError(f"book/_toc.yml lists {doc!r}, but book/{doc}.md/.ipynb is missing")


def markdown_text(doc: str) -> str:
    """The prose of a page's source: the Markdown file, or a notebook's Markdown cells."""
    path = source_of(doc)
    if path.suffix == ".md":
        return path.read_text(encoding="utf-8")
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def uses_widgets(doc: str) -> bool:
    path = source_of(doc)
    if path.suffix != ".ipynb":
        return False
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return any("ipywidgets" in "".join(c["source"]) for c in cells if c["cell_type"] == "code")


def doc_of(url: str) -> str | None:
    """The document a same-site URL points at (``notebooks/models.html#x`` -> ``notebooks/models``)."""
    parsed = urlparse(url)
    if f"{parsed.scheme}://{parsed.netloc}" != BOOK_URL or not parsed.path.endswith(".html"):
        return None
    return unquote(parsed.path.lstrip("/"))[: -len(".html")]


def configured() -> dict:
    cfg = yaml.safe_load(CONFIG.read_text()) or {}
    repo = cfg.get("repository") or {}
    launch = cfg.get("launch_buttons") or {}
    return {"url": (repo.get("url") or "").rstrip("/"),
            "path_to_book": (repo.get("path_to_book") or "").strip("/"),
            "launchers": [k for k in ("colab_url", "binderhub_url", "jupyterhub_url",
                                      "deepnote_url") if launch.get(k)]}


# ------------------------------------------------------------------------ browser
BLACKHOLE: list[socket.socket] = []


def blackhole_port() -> int:
    """A port on 127.0.0.1 where nothing listens: bound, never listening, for the session."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    BLACKHOLE.append(s)  # kept open so that no other process takes the port
    return s.getsockname()[1]


@pytest.fixture(scope="session")
def browser():
    # The network cut, second layer (the first is Visit._route): Chromium sends everything
    # but the served book to a proxy that refuses connections, so a request that escaped
    # the route (a worker's, a prefetch) fails instead of reaching the Internet.
    book_host = urlparse(BOOK_URL).hostname
    proxy = {"server": f"http://127.0.0.1:{blackhole_port()}", "bypass": book_host}
    with pw.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, proxy=proxy)
        yield b
        b.close()


class Visit:
    """One page in a fresh browser context, with everything that went wrong recorded."""

    def __init__(self, browser, url: str) -> None:
        self.errors: list[str] = []
        self.external: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught exception: {exc}"))
        self.page.on("requestfailed", lambda r: self.errors.append(
            f"request failed: {r.url} ({r.failure})"))
        self.page.on("response", self._response)
        self.page.goto(url, wait_until="load")
        self.page.wait_for_load_state("networkidle")
        # MathJax typesets after load: wait for its startup promise when it is on the page
        self.page.evaluate("async () => { if (window.MathJax && MathJax.startup && "
                           "MathJax.startup.promise) await MathJax.startup.promise; }")

    @staticmethod
    def _is_favicon(url: str) -> bool:
        # Chromium asks every site for /favicon.ico; the book has none. Only that request.
        return urlparse(url).path == "/favicon.ico"

    def _route(self, route) -> None:
        # The network cut: only the served book (and inline data) is reachable. A CDN
        # request is refused and recorded, never answered: the book must carry what it loads.
        url = route.request.url
        if url.startswith(BOOK_URL + "/"):
            route.continue_()
        elif url.startswith("data:"):
            route.continue_()
        else:
            self.external.append(url)
            route.abort()

    def _console(self, msg) -> None:
        if msg.type != "error":
            return
        where = (msg.location or {}).get("url", "")
        if self._is_favicon(where):
            return
        self.errors.append(f"console error: {msg.text} ({where})")

    def _response(self, response) -> None:
        if response.status >= 400 and not self._is_favicon(response.url):
            self.errors.append(f"HTTP {response.status}: {response.url}")

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module", params=DOCS)
def visit(request, browser):
    doc = request.param
    v = Visit(browser, f"{BOOK_URL}/{doc}.html")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    v.page.screenshot(path=str(SCREENSHOTS / f"{doc.replace('/', '__')}.png"), full_page=True)
    v.doc = doc
    yield v
    v.close()


# ------------------------------------------------------------------------ every page
def test_no_console_errors_and_no_external_requests(visit) -> None:
    assert not visit.errors, f"{visit.doc}:\n" + "\n".join(visit.errors)
    assert not visit.external, (f"{visit.doc} loads resources from outside the book, which an "
                                f"offline reader cannot see: {visit.external}")


def test_every_image_is_decoded(visit) -> None:
    broken = visit.page.evaluate("""async () => {
        const bad = [];
        for (const img of Array.from(document.images)) {
            img.loading = 'eager';
            try { await img.decode(); } catch (e) { }
            if (!img.complete || img.naturalWidth === 0) bad.push(img.currentSrc || img.src);
        }
        return bad;
    }""")
    assert not broken, f"{visit.doc}: images not decoded: {broken}"


def test_mathjax_typeset_the_equations(visit) -> None:
    n_math, n_typeset, n_errors = visit.page.evaluate("""() => [
        document.querySelectorAll('.math').length,
        document.querySelectorAll('mjx-container').length,
        document.querySelectorAll('mjx-merror, .MathJax_Error').length]""")
    source = markdown_text(visit.doc)
    display_math = "$$" in source or "```{math}" in source or "\\begin{" in source
    if display_math:
        assert n_math > 0 and n_typeset > 0, (f"{visit.doc}: the source has display math, the "
                                              f"page has {n_math} math elements, {n_typeset} typeset")
    assert n_typeset >= n_math, f"{visit.doc}: {n_math} math elements, only {n_typeset} typeset"
    assert n_errors == 0, f"{visit.doc}: {n_errors} equations failed to typeset"
    if n_math == 0:
        return
    # Typeset by the book's own MathJax (the network is cut, but say so): its root is the
    # book's _static/mathjax/es5, its script and the fonts it drew with came from there.
    root, loaded, fonts = visit.page.evaluate("""async () => {
        await document.fonts.ready;
        const paths = (((window.MathJax || {}).config || {}).loader || {}).paths || {};
        return [paths.mathjax || null,
                performance.getEntriesByType('resource').map(e => e.name),
                Array.from(document.fonts).filter(f => /^MJX/.test(f.family))
                    .map(f => [f.family, f.status])];
    }""")
    assert root == MATHJAX_ROOT + "es5", f"{visit.doc}: MathJax's root is {root!r}, not the book's copy"
    ours = [u for u in loaded if u.startswith(MATHJAX_ROOT)]
    assert any("/es5/tex-mml-chtml.js" in u for u in ours), \
        f"{visit.doc}: MathJax's script did not come from {MATHJAX_ROOT}: {ours}"
    assert any(u.split("?")[0].endswith(".woff") for u in ours), \
        f"{visit.doc}: no MathJax font loaded from {MATHJAX_ROOT}: {ours}"
    failed = [f for f, status in fonts if status == "error"]
    assert not failed, f"{visit.doc}: MathJax fonts that failed to load: {failed}"


def test_sidebar_links_every_chapter(visit) -> None:
    hrefs = visit.page.eval_on_selector_all(
        "nav.bd-docs-nav a.reference.internal", "els => els.map(e => e.href)")
    linked = {doc_of(h) for h in hrefs}
    missing = [c for c in CHAPTERS if c not in linked]
    assert not missing, f"{visit.doc}: the sidebar does not link {missing}"


def test_launch_buttons_match_the_configuration(visit) -> None:
    cfg = configured()
    hrefs = visit.page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    launch = [h for h in hrefs if re.search(r"colab\.research\.google\.com|mybinder|/hub/|"
                                            r"deepnote\.com", h)]
    n_dropdowns = visit.page.locator(".dropdown-launch-buttons").count()
    # jupyter-book's placeholder repository, used by the theme when none is configured
    placeholder = [h for h in hrefs if "executablebooks/jupyter-book" in h]
    if not cfg["url"]:
        assert not launch and n_dropdowns == 0, f"{visit.doc}: launch links without a repository: {launch}"
        assert not placeholder, f"{visit.doc}: links to jupyter-book's placeholder repository: {placeholder}"
        return
    assert not placeholder, f"{visit.doc}: links to jupyter-book's placeholder repository"
    if source_of(visit.doc).suffix != ".ipynb" or not cfg["launchers"]:
        assert not launch, f"{visit.doc}: launch links on a page that is not a notebook: {launch}"
        return
    assert launch, f"{visit.doc}: {cfg['launchers']} configured, but no launch link"
    path = "/".join(p for p in (cfg["path_to_book"], f"{visit.doc}.ipynb") if p)
    wrong = [h for h in launch if not unquote(h).endswith(path)]
    assert not wrong, f"{visit.doc}: launch links that do not open {path}: {wrong}"


def static_figure_cell(doc: str) -> int:
    """Which rendered code cell (0-based, cells removed by a ``remove-cell`` tag not
    counted) holds the static figure that stands for the page's first widget: the nearest
    code cell before the widget's cell with an image output."""
    cells = [c for c in json.loads(source_of(doc).read_text(encoding="utf-8"))["cells"]
             if c["cell_type"] == "code"
             and "remove-cell" not in c.get("metadata", {}).get("tags", [])]
    widget = next(i for i, c in enumerate(cells) if "ipywidgets" in "".join(c["source"]))
    for i in range(widget - 1, -1, -1):
        if any(k.startswith("image/") for o in cells[i].get("outputs", [])
               for k in o.get("data", {})):
            return i
    raise AssertionError(f"{doc}: a widget with no figure before it to stand for it in the book")


@pytest.mark.parametrize("doc", [d for d in DOCS if uses_widgets(d)])
def test_widget_pages_show_their_static_figure(browser, doc: str) -> None:
    """A widget lives only in a running kernel: the built page must show the figure that
    stands for it (decoded), and no widget's text representation anywhere."""
    index = static_figure_cell(doc)
    v = Visit(browser, f"{BOOK_URL}/{doc}.html")
    try:
        decoded, leaked = v.page.evaluate("""async (index) => {
            const cell = document.querySelectorAll('div.cell')[index];
            let n = 0;
            for (const img of cell ? Array.from(cell.querySelectorAll('.cell_output img')) : []) {
                try { await img.decode(); } catch (e) { }
                if (img.naturalWidth > 0) n += 1;
            }
            const leaked = Array.from(document.querySelectorAll('.cell_output'))
                .map(e => e.innerText)
                .filter(t => /(interactive|VBox|HBox)\\(children=|Loading widget/.test(t));
            return [n, leaked];
        }""", index)
        assert decoded > 0, f"{doc}: rendered code cell {index}, the widget's static figure, shows no image"
        assert not leaked, f"{doc}: a widget's text stands in for a figure: {leaked[:1]}"
        assert not v.errors, "\n".join(v.errors)
        assert not v.external, f"{doc}: requests outside the book: {v.external}"
    finally:
        v.close()


# ------------------------------------------------------------------------ search
def title_word(doc: str) -> str:
    """The longest word of the chapter's title (its first '# ' heading)."""
    heading = next(line[2:] for line in markdown_text(doc).splitlines() if line.startswith("# "))
    words = re.findall(r"[A-Za-z][a-z]{3,}", heading)
    assert words, f"{doc}: no word to search for in its title {heading!r}"
    return max(words, key=len)


@pytest.mark.parametrize("doc", CHAPTERS)
def test_search_finds_the_chapter(browser, doc: str) -> None:
    word = title_word(doc)
    v = Visit(browser, f"{BOOK_URL}/search.html?q={word}")
    try:
        v.page.wait_for_function(
            "() => /Search finished|found/i.test("
            "(document.querySelector('#search-results') || {}).innerText || '')")
        found = {doc_of(h) for h in v.page.eval_on_selector_all(
            "#search-results ul.search li a", "els => els.map(e => e.href)")}
        assert doc in found, f"searching {word!r} did not list {doc} (found {sorted(found - {None})})"
        assert not v.errors, "\n".join(v.errors)
        assert not v.external, f"search: requests outside the book: {v.external}"
    finally:
        v.close()
