"""The built site, opened in a real headless browser (Chromium through selenium), in each language.

For every tutorial and solution page, in English and in Chinese: the title is shown, every stored
output is there and none is an error, the math is typeset by MathJax (served by the site itself),
every image decoded, the browser logged no console error and no request failed or left the local
server, the "Download this notebook" link gives the tutorial as a clean notebook (in Chinese on the
Chinese site), and the language switch leads to the same page in the other language. On the
Chinese site a page declared translated shows its title and prose in Chinese, drawn with a CJK
font; a page not translated yet says so. A screenshot of each page goes to
``docs/_build/screenshots/<language>/``.

Run it after building the site: ``python docs/build.py --test`` (which sets
``LSTMJAX_DOCS_REQUIRED=1``, so a missing or out-of-date site fails). In a plain ``pytest`` run
it skips, with the reason, where the site is not built or is older than a tutorial, and where
Chromium is missing; under ``CI=true`` a missing Chromium fails instead.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import pathlib
import re
import shutil
import threading
import urllib.parse
import urllib.request

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
HTML = REPO / "docs" / "_build" / "html"  # one site per language: html/en/, html/zh_CN/
LANGUAGES = ("en", "zh_CN")
CJK = re.compile(r"[\u4e00-\u9fff]")
STAGED = REPO / "docs" / "tutorials"  # the executed notebooks the site rendered
SHOTS = REPO / "docs" / "_build" / "screenshots"
CHROMIUM = os.environ.get("LSTMJAX_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("LSTMJAX_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
]
# Chromium's own pages (e.g. the start page still loading when the first test begins).
BROWSER_OWN = ("chrome:", "chrome-untrusted:", "chrome-extension:", "devtools:", "about:")
SOURCES = sorted((REPO / "tutorials").glob("[0-9][0-9]_*.md")) + sorted(
    (REPO / "tutorials" / "solutions").glob("[0-9][0-9]_*.md")
)
PAGES = [src.relative_to(REPO / "tutorials").with_suffix("").as_posix() for src in SOURCES]
OTHER_PAGES = ["index", "installation", "glossary", "instructor_guide", "translation", "api/index", "api/nn"]


def _declared(language: str) -> set[str]:
    """The pages docs/locales/<language>/TRANSLATED declares translated."""
    path = REPO / "docs" / "locales" / language / "TRANSLATED"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return {line.split("#", 1)[0].strip() for line in lines} - {""}

pytestmark = pytest.mark.docs


def _unavailable(reason: str, *, always_fail: bool = False):
    if always_fail or os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def site() -> pathlib.Path:
    """The built site; skipped in a plain test run where it is missing or older than a tutorial."""
    stamp = HTML / ".lstmjax-built"  # written by docs/build.py after a successful build
    reason = None
    if not stamp.is_file():
        reason = f"the site is not built ({HTML} has no {stamp.name}): run `python docs/build.py --test`"
    else:
        catalogs = sorted((REPO / "docs" / "locales").rglob("*.po"))
        newer = [src.name for src in SOURCES + catalogs if src.stat().st_mtime > stamp.stat().st_mtime]
        if newer:
            reason = f"the site is older than {', '.join(newer)}: run `python docs/build.py --test`"
    if reason and os.environ.get("LSTMJAX_DOCS_REQUIRED") == "1":
        pytest.fail(reason)
    if reason:
        pytest.skip(reason)
    return HTML


@pytest.fixture(scope="module")
def server(site):
    """The site over HTTP on the loopback interface (as a reader's browser would load it)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser(site, tmp_path_factory):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable('selenium is not installed (pip install -e ".[test]")')
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        _unavailable(
            f"Chromium is needed to check the site in a browser and {', '.join(missing)} is missing "
            "(Debian: apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    driver.get("about:blank")
    yield driver
    driver.quit()


def _load(driver, url: str) -> dict:
    """Open ``url``, wait for MathJax, and return what the browser logged while loading it."""
    driver.get_log("browser")  # drain what earlier pages logged
    driver.get_log("performance")
    driver.get(url)
    typeset = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const ready = () => (window.MathJax && MathJax.startup && MathJax.startup.promise)
            ? MathJax.startup.promise.then(() => done(true), (e) => done(String(e)))
            : done(false);
        if (document.readyState === "complete") ready(); else window.addEventListener("load", ready);
        """
    )
    requests, own, failures = {}, {}, []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        method, params = message["method"], message.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            (own if url.startswith(BROWSER_OWN) else requests)[params["requestId"]] = url
        elif params.get("requestId") in own:
            continue  # the browser's own pages (its start page), not the site's
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            failures.append(f"{requests.get(params['requestId'], '?')}: {params.get('errorText')}")
        elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
            failures.append(f"{params['response']['url']}: HTTP {params['response']['status']}")
    return {
        "typeset": typeset,
        "urls": sorted(set(requests.values())),
        "failures": failures,
        "console": [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")],
    }


def _check_page_health(driver, base: str, loaded: dict) -> None:
    offsite = [u for u in loaded["urls"] if not u.startswith((base, "data:", "blob:") + BROWSER_OWN)]
    assert not offsite, f"the page requested something from another server: {offsite}"
    assert not loaded["failures"], f"failed requests: {loaded['failures']}"
    assert not loaded["console"], f"console errors: {loaded['console']}"
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.currentSrc || i.src, i.complete, i.naturalWidth]);"
    )
    broken = [src for src, complete, width in images if not (complete and width > 0)]
    assert not broken, f"images that did not decode: {broken}"
    math = driver.execute_script(
        """
        const all = Array.from(document.querySelectorAll('.math'));
        return [all.length,
                all.filter(m => m.querySelector('mjx-container')).length,
                document.querySelectorAll('mjx-merror, .MathJax_Error').length];
        """
    )
    total, typeset, math_errors = math
    if total:
        assert loaded["typeset"] is True, f"MathJax did not finish: {loaded['typeset']}"
    assert typeset == total, f"{total - typeset} of {total} math elements were not typeset"
    assert math_errors == 0, f"{math_errors} formulas failed to typeset (TeX errors)"


def _plain(text: str) -> str:
    """Text as a reader compares it: no Markdown marks, plain quotes (Sphinx makes them curly)."""
    text = text.translate(str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "`": None, "*": None, "#": None}))
    return " ".join(text.split())


def _shot(browser, language: str, name: str) -> None:
    (SHOTS / language).mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / language / f"{name.replace('/', '_')}.png"))


def _check_language_switch(driver, server: str, language: str, page: str) -> None:
    """The switch in the page's header leads to this page in the other language, which exists."""
    links = {a.get_attribute("hreflang"): a.get_attribute("href")
             for a in driver.find_elements("css selector", ".lstmjax-language a")}
    current = driver.find_elements("css selector", ".lstmjax-language .lstmjax-language-current")
    assert len(current) == 1 and current[0].get_attribute("lang") == language.replace("_", "-")
    for other in LANGUAGES:
        if other == language:
            continue
        want = urllib.parse.urljoin(server, f"{other}/{page}.html")
        assert links.get(other.replace("_", "-")) == want, f"the language switch links {links}, expected {want}"
        with urllib.request.urlopen(want, timeout=30) as response:
            assert response.status == 200


def _rendered_fonts(driver, selector: str) -> dict[str, int]:
    """The fonts Chromium drew an element's text with: ``{family: glyphs}`` (DevTools' CSS domain)."""
    driver.execute_cdp_cmd("DOM.enable", {})
    driver.execute_cdp_cmd("CSS.enable", {})
    root = driver.execute_cdp_cmd("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    node = driver.execute_cdp_cmd("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    fonts = driver.execute_cdp_cmd("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    return {font["familyName"]: font["glyphCount"] for font in fonts}


def _cjk_families() -> set[str] | None:
    """The installed font families with Chinese glyphs (fontconfig), or None where fc-list is missing."""
    fc_list = shutil.which("fc-list")
    if not fc_list:
        return None
    import subprocess

    out = subprocess.run([fc_list, ":lang=zh", "family"], capture_output=True, text=True).stdout
    return {name.strip() for line in out.splitlines() for name in line.split(",")}


def _check_chinese(driver, page: str, declared: bool) -> None:
    """A Chinese page: the document says it is Chinese; a page declared translated has its title and
    prose in Chinese, drawn with a CJK font; one not translated yet says so at the top."""
    assert driver.execute_script("return document.documentElement.lang;") == "zh-CN"
    untranslated = driver.find_elements("css selector", "article .lstmjax-untranslated")
    if not declared:
        assert untranslated and untranslated[0].is_displayed(), "a page not translated yet must say so"
        return
    assert not untranslated, f"{page} is declared translated but says it is not"
    title = driver.find_element("css selector", "article h1").text
    if not re.fullmatch(r"[\w.]+", title):  # a name (lstmjax, lstmjax.nn) is a name in every language
        assert CJK.search(title), f"the title is not in Chinese: {title!r}"
    prose = driver.execute_script(
        "return Array.from(document.querySelectorAll('article p')).map(p => p.textContent).join(' ');")
    assert len(CJK.findall(prose)) >= 20, f"{page} declared translated has no Chinese prose"
    english = driver.execute_script(
        """
        const skip = 'table, pre, .cell_output, .cell_input, .math, .MathJax, mjx-container, code, .admonition.note, '
                   + 'dl.py, .lstmjax-english, .lstmjax-no-translate';
        return Array.from(document.querySelectorAll('article p, article li > p, article dd > p'))
          .filter(p => !p.closest(skip))
          .map(p => { const c = p.cloneNode(true);
                      c.querySelectorAll('code, .math, mjx-container, a.reference.download').forEach(e => e.remove());
                      return c.textContent; })
          .filter(t => (t.match(/[A-Za-z]{2,}/g) || []).length >= 4 && !/[\u4e00-\u9fff]/.test(t));
        """
    )
    assert not english, f"{len(english)} paragraphs of the Chinese page are in English, the first: {english[0][:200]!r}"
    families = _cjk_families()
    if families is not None and CJK.search(title):
        fonts = _rendered_fonts(driver, "article h1")
        assert set(fonts) & families, f"the Chinese title was drawn with {fonts}, none of them a CJK font"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("page", PAGES)
def test_tutorial_page(page, language, browser, server):
    import jupytext
    import nbformat

    staged = STAGED / f"{page}.ipynb"
    assert staged.is_file(), f"{page} has no page: was it executed and the site rebuilt?"
    notebook = nbformat.read(staged, as_version=4)
    loaded = _load(browser, urllib.parse.urljoin(server, f"{language}/tutorials/{page}.html"))
    _shot(browser, language, page)

    # "Download this notebook (.ipynb)" gives the tutorial as a clean notebook (jupytext), in the
    # site's language: on the Chinese site the Chinese notebook, whose code cells are the
    # tutorial's after the one that sets the checks' language.
    links = [
        a.get_attribute("href")
        for a in browser.find_elements("css selector", "article a.download")
        if a.get_attribute("href").endswith(".ipynb")
    ]
    assert len(links) == 1, f"expected one .ipynb download link, found {links}"
    with urllib.request.urlopen(links[0], timeout=30) as response:
        downloaded = nbformat.reads(response.read().decode("utf-8"), as_version=4)
    nbformat.validate(downloaded)
    source = jupytext.read(REPO / "tutorials" / f"{page}.md")
    assert not any(c.get("outputs") for c in downloaded.cells if c.cell_type == "code")
    if language == "en":
        assert [c.source for c in downloaded.cells] == [c.source for c in source.cells]
    else:
        code = [c.source for c in downloaded.cells if c.cell_type == "code"]
        assert code[1:] == [c.source for c in source.cells if c.cell_type == "code"]
        assert f'os.environ["LSTMJAX_LANGUAGE"] = "{language}"' in code[0]
        assert downloaded.metadata["lstmjax"]["language"] == language

    # The title (the first heading of the notebook in this language) is shown.
    title = re.search(r"^#\s+(.+)$", downloaded.cells[0].source, flags=re.MULTILINE).group(1).strip()
    heading = browser.find_element("css selector", "article h1")
    assert heading.is_displayed()
    assert _plain(heading.text) == _plain(title), f"shown title {heading.text!r}, notebook title {title!r}"

    # Every stored output is on the page, and none is an error.
    expected = sum(
        1
        for cell in notebook.cells
        if cell.cell_type == "code"
        and cell.get("outputs")
        and not set(cell.metadata.get("tags", [])) & {"remove-output", "remove-cell"}
    )
    shown = browser.execute_script("return document.querySelectorAll('article div.cell_output').length;")
    assert shown == expected, f"{shown} cell outputs on the page, {expected} in the executed notebook"
    assert expected > 0, "the page shows no outputs: was the notebook executed?"
    errors = browser.execute_script(
        "return document.querySelectorAll('article .cell_output .traceback, article .cell_output .error').length;"
    )
    assert errors == 0, f"{errors} error outputs on the page"
    images = sum(
        1 for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
        if {"image/png", "image/svg+xml"} & set(out.get("data", {}))  # plots, and course.figure's pictures
    )
    shown_images = browser.execute_script("return document.querySelectorAll('article .cell_output img').length;")
    assert shown_images == images, f"{shown_images} output images on the page, {images} in the notebook"

    _check_page_health(browser, server, loaded)
    has_math = any("$" in cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    if has_math:
        assert browser.execute_script("return document.querySelectorAll('article mjx-container').length;") > 0
    _check_language_switch(browser, server, language, f"tutorials/{page}")
    if language != "en":
        _check_chinese(browser, page, f"tutorials/{page}" in _declared(language))

    # More screenshots, to look at as a reader sees them: the banner, the first displayed formula,
    # the first figure.
    for what, selector in [("banner", "article .admonition.note"), ("math", "article div.math"),
                           ("figure", "article .cell_output img")]:
        found = browser.find_elements("css selector", selector)
        if found:
            browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", found[0])
            _shot(browser, language, f"{page}-{what}")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("page", OTHER_PAGES)
def test_other_page(page, language, browser, server):
    loaded = _load(browser, urllib.parse.urljoin(server, f"{language}/{page}.html"))
    _shot(browser, language, page)
    assert browser.find_element("css selector", "article h1").is_displayed()
    _check_page_health(browser, server, loaded)
    _check_language_switch(browser, server, language, page)
    if language != "en":
        _check_chinese(browser, page, page in _declared(language))


def test_root_page_leads_to_each_language(site):
    root = (site / "index.html").read_text(encoding="utf-8")
    for language in LANGUAGES:
        assert f'href="{language}/index.html"' in root
        assert (site / language / "index.html").is_file()


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_tutorial_has_a_page(site, language):
    """The course page lists every tutorial in tutorials/ (new ones appear without editing the docs)."""
    course = (site / language / "tutorials" / "index.html").read_text(encoding="utf-8")
    for page in PAGES:
        if not page.startswith("solutions/"):
            assert f'href="{page}.html"' in course, f"the course page does not link {page}"


# --------------------------------------------------------------------------- the build's own checks
# (no site or browser needed: these run in every test run where Sphinx is installed)


def _docs_extension():
    pytest.importorskip("sphinx", reason='the docs build needs Sphinx (pip install -e ".[docs]")')
    import importlib.util

    import sys

    if str(REPO / "docs" / "_ext") not in sys.path:
        sys.path.insert(0, str(REPO / "docs" / "_ext"))
    spec = importlib.util.spec_from_file_location("lstmjax_docs", REPO / "docs" / "_ext" / "lstmjax_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Env:
    """The part of a Sphinx environment check_api_coverage reads: the Python domain's entries."""

    def __init__(self, objects, modules):
        self.domain = type("Domain", (), {"objects": dict.fromkeys(objects), "modules": dict.fromkeys(modules)})

    def get_domain(self, name):
        assert name == "py"
        return self.domain


def test_api_check_fails_when_a_public_name_has_no_entry():
    import importlib

    import lstmjax

    docs = _docs_extension()
    modules = docs.public_modules()
    objects = {f"{m}.{name}" for m in modules for name in importlib.import_module(m).__all__}
    docs.check_api_coverage(None, _Env(objects, modules))  # everything documented: passes

    for missing in ("lstmjax.nn.cells.lstm_step", "lstmjax.data.vocab.PAD_ID"):
        with pytest.raises(Exception, match=re.escape(missing)):
            docs.check_api_coverage(None, _Env(objects - {missing}, modules))
    with pytest.raises(Exception, match="module lstmjax.nn.layers"):
        docs.check_api_coverage(None, _Env(objects, set(modules) - {"lstmjax.nn.layers"}))
    assert set(lstmjax.__all__) <= {n.rsplit(".", 1)[1] for n in objects} | {
        m.removeprefix("lstmjax.") for m in modules
    }, "a name in lstmjax.__all__ is in no public module's __all__"


def test_executed_notebooks_are_checked_before_rendering(tmp_path):
    jupytext = pytest.importorskip("jupytext")
    import nbformat

    docs = _docs_extension()
    source = SOURCES[0]
    executed = tmp_path / "nb.ipynb"
    assert "is missing" in docs.notebook_problem(source, executed)

    notebook = jupytext.read(source)
    notebook.metadata["lstmjax"] = {"fast": True}
    nbformat.write(notebook, executed)
    assert docs.notebook_problem(source, executed) is None
    assert "fast=False" in docs.notebook_problem(source, executed, fast=False)

    code = next(cell for cell in notebook.cells if cell.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("error", ename="ValueError", evalue="boom", traceback=[])]
    nbformat.write(notebook, executed)
    assert "ValueError: boom" in docs.notebook_problem(source, executed)

    notebook.cells.append(nbformat.v4.new_code_cell("1 + 1"))
    nbformat.write(notebook, executed)
    assert "is stale" in docs.notebook_problem(source, executed)


def test_links_between_tutorials_point_at_site_pages():
    docs = _docs_extension()
    tutorial, stage = REPO / "tutorials" / "01_x.md", REPO / "docs" / "tutorials"
    text = "[g](../docs/glossary.md#lstm) [s](solutions/01_x.md) [w](https://a.org/b.md) [c](#top) [r](../README.md)"
    assert docs.rewrite_links(text, tutorial, stage / "01_x.ipynb") == (
        "[g](../glossary.md#lstm) [s](solutions/01_x.ipynb) [w](https://a.org/b.md) [c](#top) [r](../README.md)"
    )
    solution = REPO / "tutorials" / "solutions" / "01_x.md"
    assert docs.rewrite_links("[t](../01_x.md)", solution, stage / "solutions" / "01_x.ipynb") == "[t](../01_x.ipynb)"
    glossary = REPO / "docs" / "glossary.md"
    assert docs.rewrite_links("[t](../tutorials/02_y.md)", glossary, glossary) == "[t](tutorials/02_y.ipynb)"
