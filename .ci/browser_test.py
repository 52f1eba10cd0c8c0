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

Every page must also fit (issue 25.3), loaded at 1280 px and at 800 px wide with every
``<details>`` open: no element of the article wider than its column, none whose content is
cut by a box that scrolls or clips sideways (code, outputs, tables, equations), and every
figure a notebook outputs shown at no less than ``MIN_FIGURE_SCALE`` of its natural width
(the arithmetic is beside that constant). A second full-page screenshot, at 800 px, is
written for each page. What makes the pages fit is ``book/_static/fit.css`` and
``fit-math.js``.
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

    def __init__(self, browser, url: str, width: int = 1280) -> None:
        self.errors: list[str] = []
        self.external: list[str] = []
        self.context = browser.new_context(viewport={"width": width, "height": 900})
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


# ------------------------------------------------------------------------ pages that fit
# Issue 25.3: at both widths nothing of the article is wider than its column, and no box
# hides part of its content behind a horizontal scroll bar or a clip. 1280 px is a laptop
# with both sidebars shown (the article's column is then at its narrowest, about 690 px);
# 800 px a small window or tablet, the sidebars folded away.
WIDTHS = (1280, 800)
FIT_TOLERANCE_PX = 1  # layout is fractional, scrollWidth/clientWidth are whole pixels

# The smallest scale at which a notebook's figure may be shown (its displayed width over
# its natural width). Matplotlib's inline backend saves a figure at 100 dpi (the default
# figure.dpi) and draws text at 10 pt by default (font.size: tick labels, axis labels and
# legends are "medium"), 10/72 in x 100 px/in = 13.9 image pixels. Shown at scale s, that
# text is 13.9 s CSS pixels, and a CSS inch is 96 px: it reads as 10 x s x 100/96 pt. The
# smallest text a journal accepts in a figure at its printed size is about 7 pt, so
# s >= 7/10 x 96/100 = 0.672: a figure may be at most 1/0.672 = 1.49 times its column's
# width, 1,024 px (10.2 in at 100 dpi, after the backend's tight crop) for the 688-px
# column at 1280 px, 1,095 px for the 736-px column at 800 px. A figure that draws text
# below 10 pt (fontsize=7, 8 or 9) needs a larger scale than this for the same 7 pt: the
# check assumes the default.
MIN_FIGURE_SCALE = 7 / 10 * 96 / 100

OPEN_DETAILS = """async () => {
    // What a reader can unfold is checked unfolded: hidden code cells (hide-input),
    // dropdowns. A closed <details> lays out nothing, so nothing in it could be measured.
    for (const d of document.querySelectorAll('article.bd-article details')) d.open = true;
    await document.fonts.ready;
    // two frames: the page's own scripts that follow an opened <details> (fit-math.js) run
    await new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
}"""

FIT_JS = """(tol) => {
    const article = document.querySelector('article.bd-article');
    if (!article) return ['no article.bd-article on the page'];
    const st = getComputedStyle(article), box = article.getBoundingClientRect();
    // The column: the article's content box (its padding is the gutter, not the column)
    const left = box.left + parseFloat(st.paddingLeft) + parseFloat(st.borderLeftWidth);
    const right = box.right - parseFloat(st.paddingRight) - parseFloat(st.borderRightWidth);
    const cells = Array.from(article.querySelectorAll('div.cell'));
    const describe = (el) => {
        let name = el.tagName.toLowerCase();
        if (el.id) name += '#' + el.id;
        const classes = (el.getAttribute('class') || '').trim().split(/\\s+/).filter(Boolean);
        if (classes.length) name += '.' + classes.slice(0, 3).join('.');
        const cell = el.closest('div.cell');
        if (cell) name += ` in code cell ${cells.indexOf(cell)}` + (
            el.closest('.cell_output') ? ' (output)' : el.closest('.cell_input') ? ' (input)' : '');
        const text = (el.textContent || '').trim().replace(/\\s+/g, ' ');
        return `${name} "${text.length > 70 ? text.slice(0, 70) + '...' : text}"`;
    };
    const bad = [], flagged = [];
    for (const el of article.querySelectorAll('*')) {
        if (flagged.some(f => f.contains(el))) continue;  // its outermost offender only
        // A typeset equation is measured whole, by its mjx-container (and the span.math or
        // div.math around it): inside, MathJax draws a stretchy delimiter by clipping a run
        // of glyphs (mjx-ext) and keeps a clipped, invisible MathML copy for screen readers
        // (mjx-assistive-mml); neither hides anything a reader should see.
        const eq = el.closest('mjx-container');
        if (eq && eq !== el) continue;
        const r = el.getBoundingClientRect();
        if (r.width === 0 || r.height === 0) continue;   // lays out nothing
        const cs = getComputedStyle(el);
        if (cs.visibility === 'hidden') continue;
        const out = Math.max(left - r.left, r.right - right);
        if (out > tol) {
            flagged.push(el);
            bad.push(`sticks out of the ${Math.round(right - left)}-px column by ` +
                     `${Math.round(out)} px: ${describe(el)}`);
        } else if (/^(auto|scroll|hidden|clip)$/.test(cs.overflowX)
                   && el.scrollWidth > el.clientWidth + tol) {
            flagged.push(el);
            bad.push(`content cut (${el.scrollWidth} px in a ${el.clientWidth}-px box, ` +
                     `overflow-x: ${cs.overflowX}): ${describe(el)}`);
        }
    }
    const page = document.documentElement;
    if (page.scrollWidth > page.clientWidth + tol)
        bad.push(`the page scrolls sideways: ${page.scrollWidth} px in a ` +
                 `${page.clientWidth}-px window`);
    return bad;
}"""

FIGURES_JS = """async () => {
    const article = document.querySelector('article.bd-article');
    const cells = Array.from(article.querySelectorAll('div.cell'));
    const shown = [];
    for (const img of article.querySelectorAll('.cell_output img')) {
        try { await img.decode(); } catch (e) { }
        shown.push([cells.indexOf(img.closest('div.cell')),
                    decodeURIComponent((img.currentSrc || img.src).split('/').pop()),
                    img.naturalWidth, img.naturalHeight, img.getBoundingClientRect().width]);
    }
    return shown;
}"""


COLUMN_JS = """() => {
    const a = document.querySelector('article.bd-article'), st = getComputedStyle(a);
    return a.clientWidth - parseFloat(st.paddingLeft) - parseFloat(st.paddingRight);
}"""


def notebook_cell(doc: str, rendered: int) -> int | None:
    """The index in the notebook (0-based, all cells) of its ``rendered``-th code cell on the
    page (div.cell: the code cells without a ``remove-cell`` tag), or None for a page that
    is not a notebook."""
    path = source_of(doc)
    if path.suffix != ".ipynb":
        return None
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    shown = [i for i, c in enumerate(cells) if c["cell_type"] == "code"
             and "remove-cell" not in c.get("metadata", {}).get("tags", [])]
    return shown[rendered] if 0 <= rendered < len(shown) else None


def with_notebook_cells(doc: str, line: str) -> str:
    """``code cell 7`` (the page's) followed by the notebook's own cell index."""
    def name(m: re.Match) -> str:
        index = notebook_cell(doc, int(m[1]))
        return m[0] if index is None else f"{m[0]} (notebook cell {index})"
    return re.sub(r"code cell (\d+)", name, line)


@pytest.fixture(scope="module", params=[(d, w) for w in WIDTHS for d in DOCS],
                ids=lambda p: f"{p[0]}@{p[1]}")
def sized_visit(request, browser):
    """A page loaded at one of WIDTHS, every <details> on it open."""
    doc, width = request.param
    v = Visit(browser, f"{BOOK_URL}/{doc}.html", width=width)
    v.page.evaluate(OPEN_DETAILS)
    if width != 1280:  # the 1280-px screenshot is the visit fixture's (details closed)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        v.page.screenshot(path=str(SCREENSHOTS / f"{doc.replace('/', '__')}@{width}.png"),
                          full_page=True)
    v.doc, v.width = doc, width
    yield v
    v.close()


def test_every_element_fits_its_column(sized_visit) -> None:
    """Every element of the article (what a reader can unfold, unfolded) lies within the
    article's column, and no box in it scrolls or clips part of its content sideways
    (scrollWidth > clientWidth where overflow-x is auto, scroll, hidden or clip): a code
    line, an output, a table or an equation behind a scroll bar is cut for a reader who
    prints or skims the page. Each offender is listed once, its outermost element: tag,
    id and classes, the code cell it is in (the page's, 0-based, and the notebook's cell
    index), the start of its text."""
    v = sized_visit
    bad = [with_notebook_cells(v.doc, b) for b in v.page.evaluate(FIT_JS, FIT_TOLERANCE_PX)]
    assert not bad, (f"{v.doc} at {v.width} px: {len(bad)} element(s) wider than the column "
                     f"or cut:\n" + "\n".join(bad))


def test_figures_are_readable(sized_visit) -> None:
    """Every image a notebook cell outputs is shown at no less than MIN_FIGURE_SCALE of
    its natural width (the arithmetic is at MIN_FIGURE_SCALE): a figure squeezed further
    into the column shows its 10-pt text below 7 pt."""
    v = sized_visit
    small = [with_notebook_cells(v.doc, f"code cell {cell}: {src} ") +
             f"({natural_w}x{natural_h} px, {natural_w / 100:.1f} in at 100 dpi) shown "
             f"{shown_w:.0f} px wide, scale {shown_w / natural_w:.2f}"
             for cell, src, natural_w, natural_h, shown_w in v.page.evaluate(FIGURES_JS)
             if natural_w > 0 and shown_w < MIN_FIGURE_SCALE * natural_w]
    limit = v.page.evaluate(COLUMN_JS) / MIN_FIGURE_SCALE
    assert not small, (
        f"{v.doc} at {v.width} px: figures shown below {MIN_FIGURE_SCALE:.3f} of their width, "
        f"their text below 7 pt (draw them at most {limit:.0f} px wide, about "
        f"{limit / 100:.1f} in at 100 dpi):\n" + "\n".join(small))


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
