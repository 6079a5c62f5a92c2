"""The built book, opened in a real headless Chromium as a reader would open it: every chapter shows its
figures and no error, progress bar or stderr; every image sits in a numbered, captioned figure near the top
of its chapter; nothing is wider than the content column or shrunk below legibility; tables hold no NaN.

Runs after `make reproduce` (CI does both), driving the system's Chromium through Playwright (no browser
download). Without a built book, Chromium or Playwright it is skipped, unless VHS_REQUIRE_BOOK=1 (CI) turns
that into a failure. A screenshot of each page is kept in `_build/screenshots/` (CI's artefacts).
"""

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
# Chromium's own background traffic is refused by a closed network; these flags keep it from trying.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 900}
PROGRESS = re.compile(r"\d+%\|[^|]*\||\d+/\d+ \[\d+:\d+|it/s\]|Warning:|UserWarning|Traceback")
FIRST_FIGURE_WITHIN = 2 * VIEWPORT["height"]  # px below the chapter's first code cell
LEAST_SCALE = 0.8  # a figure is shown at no less than this share of its drawn width (its 9-point text stays legible)

MEASURE = """() => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main');
  const column = article.getBoundingClientRect();
  const top = el => el.getBoundingClientRect().top + window.scrollY;
  const firstCell = article.querySelector('div.cell');
  const images = [...article.querySelectorAll('img')];
  return {
    text: article.innerText,
    columnRight: column.right,
    stderr: article.querySelectorAll('.output.stderr, .stderr').length,
    errors: article.querySelectorAll('.output_error, .output.traceback').length,
    injected: article.querySelectorAll('.tag_injected-parameters').length,
    firstCellTop: firstCell ? top(firstCell) : top(article),
    images: images.map(img => ({
      src: img.getAttribute('src'),
      loaded: img.complete && img.naturalWidth > 0,
      top: top(img),
      right: img.getBoundingClientRect().right,
      shown: img.getBoundingClientRect().width,
      drawn: img.naturalWidth,
      caption: (img.closest('figure')?.querySelector('figcaption')?.innerText || '').trim(),
      numbered: !!img.closest('figure')?.querySelector('figcaption .caption-number'),
    })),
    tables: [...article.querySelectorAll('table')].map(t => ({
      right: t.getBoundingClientRect().right,
      text: t.innerText,
    })),
  };
}"""


def chapters() -> list[Path]:
    """Every executed chapter page of the book."""
    return sorted((HTML / "book" / "notebooks").glob("*.html"))


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = None if CHROMIUM else "no chromium on PATH"
    missing = missing or (None if sync_playwright else "no playwright (pip install -e '.[dev]')")
    missing = missing or (None if (HTML / "index.html").exists() else "no built book (run make reproduce)")
    if missing:
        if os.environ.get("VHS_REQUIRE_BOOK") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def pages(browser) -> dict[str, dict]:
    """What each chapter shows, measured in the browser, with a screenshot of each kept."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    measured = {}
    page = browser.new_page(viewport=VIEWPORT)
    for chapter in [HTML / "book" / "intro.html", *chapters()]:
        page.goto(chapter.as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(SCREENSHOTS / f"{chapter.stem}.png"), full_page=True)
        measured[chapter.stem] = page.evaluate(MEASURE)
    page.close()
    return measured


def test_every_chapter_renders_its_figures_without_error_progress_or_stderr(pages: dict[str, dict]) -> None:
    assert len(pages) >= 4, list(pages)
    for name, shown in pages.items():
        assert not shown["errors"], f"{name}: an error cell"
        assert not shown["stderr"], f"{name}: stderr output on the page"
        assert not PROGRESS.search(shown["text"]), f"{name}: progress or warning text: {PROGRESS.search(shown['text'])[0]!r}"
        assert shown["injected"] <= 1, f"{name}: {shown['injected']} injected-parameters cells"
        if name != "intro":
            assert shown["images"], f"{name}: no figure"
            assert all(image["loaded"] for image in shown["images"]), f"{name}: an image did not load"


def test_every_image_is_a_numbered_captioned_figure_near_the_top(pages: dict[str, dict]) -> None:
    for name, shown in pages.items():
        for image in shown["images"]:
            assert image["numbered"] and len(image["caption"]) > 20, f"{name}: {image['src']} has no numbered caption"
        if shown["images"]:
            below = shown["images"][0]["top"] - shown["firstCellTop"]
            assert below <= FIRST_FIGURE_WITHIN, f"{name}: the first figure is {below:.0f} px below the first cell"


def test_nothing_is_wider_than_the_column_or_shrunk_illegibly_and_no_table_shows_nan(pages: dict[str, dict]) -> None:
    for name, shown in pages.items():
        for image in shown["images"]:
            assert image["right"] <= shown["columnRight"] + 1, f"{name}: {image['src']} overflows the column"
            assert image["shown"] >= LEAST_SCALE * image["drawn"], (
                f"{name}: {image['src']} drawn {image['drawn']} px wide, shown at {image['shown']:.0f}"
            )
        for table in shown["tables"]:
            assert table["right"] <= shown["columnRight"] + 1, f"{name}: a table overflows the column: {table['text'][:80]!r}"
            assert not re.search(r"\bnan\b", table["text"], re.IGNORECASE), f"{name}: NaN in a table: {table['text'][:120]!r}"


def test_the_introduction_shows_the_table_of_what_was_run(pages: dict[str, dict]) -> None:
    intro = pages["intro"]["text"]
    section = intro.split("What was run in this build", 1)[1].split("Our rules where the paper is silent", 1)[0]
    assert "answered" in section and "chapter" in section, "intro: the table of what was run is missing (glued from chapter 9)"
