"""The built site, opened in a real browser (headless Chromium driven by Selenium).

A build can succeed and still show the reader a broken page: an image that does not decode, a
stored traceback rendered as output, a Colab button that opens a notebook that is not in the
repository. This file builds the book into a temporary directory (stored outputs, no execution),
serves it on 127.0.0.1, and checks every page listed in `_toc.yml`:

- the page loads and has its title, a repository button, and copy buttons on its code;
- every <img> decodes (naturalWidth > 0), and a chapter shows at least as many images as its
  notebook stores figures;
- no error output (traceback) and no docutils error message is rendered;
- a notebook page's Colab button opens `<repository>/blob/<branch>/<that notebook's path>` and
  that notebook is tracked in git.

A full-page screenshot of each page goes to `$MYGPT_ARTIFACTS/screenshots/` (default
`artifacts/` in the repository root, ignored by git) for a person to look at.

Chromium runs with its network features off and every host name except 127.0.0.1 unresolvable,
so the test is offline and cannot depend on anything outside the machine. (MathJax comes from a
CDN, so formulas show as TeX source in the screenshots; the pages are otherwise complete.)
`.ci/run` installs Debian's `chromium` and `chromium-driver`; without them these tests skip.
Set `MYGPT_SITE_DIR` to an existing `_build/html` to check that build instead of building.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())

CHROMIUM = (
    shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
)
CHROMEDRIVER = shutil.which("chromedriver")

needs_browser = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Chromium and its driver (Debian: apt-get install chromium chromium-driver; .ci/run does this)",
)


def _toc_files(node: object) -> list[str]:
    """Every `file:` in the table of contents, in reading order (root, chapters, parts, sections)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key in ("root", "file"):
            if isinstance(node.get(key), str):
                found.append(node[key])
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key) or []:
                found.extend(_toc_files(child))
    return found


def _source(page: str) -> Path:
    """The source file of a toc entry (entries carry no suffix)."""
    for suffix in (".ipynb", ".md"):
        if (ROOT / f"{page}{suffix}").exists():
            return ROOT / f"{page}{suffix}"
    raise AssertionError(f"_toc.yml lists {page!r} but neither {page}.ipynb nor {page}.md exists")


PAGES = _toc_files(TOC)


def _stored_figures(notebook: Path) -> int:
    """How many images a notebook's stored outputs hold (each must appear on its page)."""
    nb = nbformat.read(notebook, as_version=4)
    return sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if any(mime.startswith("image/") for mime in output.get("data", {}))
    )


def _tracked_in_git(path: Path) -> bool:
    result = subprocess.run(
        ["git", "ls-files", "--error-unmatch", str(path.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return result.returncode == 0


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site's html directory: built now from the stored outputs, or $MYGPT_SITE_DIR."""
    if os.environ.get("MYGPT_SITE_DIR"):
        return Path(os.environ["MYGPT_SITE_DIR"])
    out = tmp_path_factory.mktemp("site")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    # Warnings are the book-build step's business (.ci/run builds with -W); here a build that
    # produces pages is enough, and the browser checks what they show.
    result = subprocess.run(
        [str(jupyter_book), "build", str(ROOT), "--path-output", str(out), "--all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    html = out / "_build" / "html"
    assert result.returncode == 0 and html.is_dir(), (
        f"book build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return html


@pytest.fixture(scope="module")
def base_url(site: Path) -> Iterator[str]:
    """Serve the site on 127.0.0.1 (a file:// page would not behave like the published one)."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One headless Chromium for all pages, with no network features and a fresh profile."""
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--metrics-recording-only",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def screenshots() -> Path:
    directory = Path(os.environ.get("MYGPT_ARTIFACTS", ROOT / "artifacts")) / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


# Waits until every image has loaded (or failed) and reports what the browser decoded.
_IMAGES_JS = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
images.forEach(img => { img.loading = 'eager'; });
Promise.all(images.map(img => img.decode().then(() => null, () => null))).then(() => {
  done(images.map(img => ({src: img.getAttribute('src'), width: img.naturalWidth,
                           inOutput: img.closest('.cell_output') !== null})));
});
"""

# The longest line of each code cell (input) that needs a horizontal scrollbar.
_WIDE_CODE_JS = """
return Array.from(document.querySelectorAll('.cell_input div.highlight pre'))
  .filter(pre => pre.scrollWidth > pre.clientWidth + 1)
  .map(pre => pre.textContent.split('\\n').reduce((a, b) => (a.length >= b.length ? a : b)));
"""

# Rendered error outputs (myst-nb: "output traceback"/"output error") and docutils errors.
_ERRORS_JS = """
const selectors = ['.cell_output .traceback', '.cell_output .output.error', '.system-message',
                   '.problematic'];
return selectors.flatMap(s => Array.from(document.querySelectorAll(s)))
  .map(el => el.className + ': ' + el.textContent.slice(0, 200));
"""


def _full_page_screenshot(driver: object, path: Path) -> None:
    """The whole page, not just the window (Chrome DevTools' beyond-viewport capture)."""
    import base64

    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    width, height = int(size["width"]), min(int(size["height"]), 30000)  # the API page is long
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
    )
    path.write_bytes(base64.b64decode(shot["data"]))


def test_the_toc_lists_pages() -> None:
    assert PAGES, "_toc.yml lists no pages"
    assert len(PAGES) == len(set(PAGES)), f"a page is listed twice in _toc.yml: {PAGES}"


def test_api_page_documents_every_module() -> None:
    """book/api.md has an automodule for every module of mygpt in git, so none goes missing."""
    api = (ROOT / "book" / "api.md").read_text()
    documented = set(re.findall(r"^\.\. automodule:: mygpt\.(\w+)", api, flags=re.MULTILINE))
    listed = subprocess.run(
        ["git", "ls-files", "mygpt/*.py"], cwd=ROOT, capture_output=True, text=True
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    # The package's modules are the files directly in mygpt/ (mygpt/results/ holds data and
    # the script that writes it, not modules).
    files = [Path(p) for p in listed.stdout.split()]
    modules = {p.stem for p in files if p.parent == Path("mygpt")} - {"__init__", "__main__"}
    missing = sorted(m for m in modules if not m.startswith("_") and m not in documented)
    assert not missing, f"book/api.md has no '.. automodule:: mygpt.<name>' section for: {missing}"
    stale = sorted(documented - modules)
    assert not stale, f"book/api.md documents modules that are not in mygpt/: {stale}"


@needs_browser
@pytest.mark.parametrize("page", PAGES)
def test_page_in_browser(
    page: str, site: Path, base_url: str, browser: object, screenshots: Path
) -> None:
    source = _source(page)
    html = site / f"{page}.html"
    assert html.is_file(), f"{page}: the build wrote no {html.relative_to(site)}"

    browser.get(f"{base_url}/{page}.html")
    _full_page_screenshot(browser, screenshots / f"{page.replace('/', '__')}.png")
    problems: list[str] = []

    title = browser.title
    if not title or "404" in title:
        problems.append(f"no proper title ({title!r})")
    if not browser.find_elements("css selector", "article, main"):
        problems.append("no article/main element: the page did not render")

    repo_url = CONFIG["repository"]["url"].rstrip("/")
    if not browser.find_elements("css selector", f"a[href^='{repo_url}']"):
        problems.append(f"no repository button linking {repo_url}")
    code_blocks = browser.find_elements("css selector", "div.highlight pre")
    if code_blocks and not browser.find_elements("css selector", "button.copybtn"):
        problems.append(f"{len(code_blocks)} code blocks but no copy button (sphinx-copybutton)")

    # The window is 1280 pixels wide: the code of every cell, at most 88 characters a line
    # (test_notebooks_meta.py), must show whole, without a horizontal scrollbar (book/_static).
    wide = browser.execute_script(_WIDE_CODE_JS)
    problems += [f"code cell wider than the page: {line!r}" for line in wide]

    images = browser.execute_async_script(_IMAGES_JS)
    problems += [f"image does not decode: {img['src']}" for img in images if img["width"] == 0]
    if source.suffix == ".ipynb":
        stored = _stored_figures(source)
        shown = sum(1 for img in images if img["inOutput"] and img["width"] > 0)
        if shown < stored:
            problems.append(f"the notebook stores {stored} figures, the page shows {shown}")

    problems += [f"error rendered: {text}" for text in browser.execute_script(_ERRORS_JS)]

    colab = [
        a.get_attribute("href")
        for a in browser.find_elements("css selector", "a[href*='colab.research.google.com']")
    ]
    if source.suffix == ".ipynb":
        repo = CONFIG["repository"]["url"].rstrip("/").removeprefix("https://github.com/")
        branch = CONFIG["repository"].get("branch", "main")
        path = source.relative_to(ROOT).as_posix()
        expected = f"{CONFIG['launch_buttons']['colab_url'].rstrip('/')}/github/{repo}/blob/{branch}/{path}"
        if expected not in colab:
            problems.append(f"no Colab button opening {expected} (found {colab})")
        if not _tracked_in_git(source):
            problems.append(
                f"the Colab button opens {path}, which is not tracked in git (commit it)"
            )
    for href in colab:  # any Colab link must open a notebook that exists here
        match = re.search(r"/blob/[^/]+/(.+)$", href)
        if (
            match is None
            or not match.group(1).endswith(".ipynb")
            or not (ROOT / match.group(1)).is_file()
        ):
            problems.append(
                f"Colab link to something that is not a notebook in the repository: {href}"
            )

    assert not problems, f"{page} ({base_url}/{page}.html):\n  " + "\n  ".join(problems)
