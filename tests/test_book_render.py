"""The built book, opened in a real headless Chromium: every chapter renders its figures, no error cell.

Runs after `make reproduce` (CI does both); without a built book or a Chromium it is skipped, unless
VHS_REQUIRE_BOOK=1 (CI) turns that into a failure.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files", "--virtual-time-budget=5000"]


def chapters() -> list[Path]:
    """index.html and every executed chapter page of the book."""
    return [HTML / "index.html", *sorted((HTML / "book" / "notebooks").glob("*.html"))]


@pytest.fixture(scope="module")
def browser() -> str:
    missing = None if CHROMIUM else "no chromium on PATH"
    missing = missing or (None if (HTML / "index.html").exists() else "no built book (run make reproduce)")
    if missing:
        if os.environ.get("VHS_REQUIRE_BOOK") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    return CHROMIUM


def rendered_dom(browser: str, page: Path) -> str:
    return subprocess.run(
        [browser, *FLAGS, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout


def test_every_chapter_renders_its_figures_without_error_cells(browser: str) -> None:
    pages = chapters()
    assert len(pages) >= 3, pages
    for page in pages:
        dom = rendered_dom(browser, page)
        assert "<h1" in dom, f"{page.name}: nothing rendered"
        assert "Traceback" not in dom and "output_error" not in dom, f"{page.name}: an error cell"
        if page.name == "index.html":
            continue
        images = re.findall(r'<img[^>]+src="([^"]+)"', dom)
        figures = [src for src in images if "_images/" in src]
        assert figures, f"{page.name}: no figure"
        for src in figures:
            path = (page.parent / src).resolve()
            assert path.stat().st_size > 1000, f"{page.name}: {src} is empty"


@pytest.mark.parametrize("chapter", ["01_", "03_"])  # the haystacks, and the single-needle curve
def test_a_screenshot_of_the_chapter_is_not_blank(browser: str, tmp_path: Path, chapter: str) -> None:
    page = next((p for p in chapters() if p.name.startswith(chapter)), None)
    assert page, f"no {chapter}* chapter in {HTML}: the built book is older than the notebooks (run make reproduce)"
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, *FLAGS, "--window-size=1200,2400", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
        cwd=tmp_path,
    )
    colours = Image.open(shot).convert("L").getextrema()
    assert colours[1] - colours[0] > 100, "the screenshot is one flat colour"


def test_the_introduction_shows_the_table_of_what_was_run(browser: str) -> None:
    dom = rendered_dom(browser, HTML / "book" / "intro.html")
    assert 'id="what-was-run-in-this-build"' in dom, "intro.html: no 'What was run' section"
    section = dom.split('id="what-was-run-in-this-build"', 1)[1].split('id="our-rules-where-the-paper-is-silent"', 1)[0]
    assert "<table" in section and "answered" in section, (
        "intro.html: the table of what was run is missing (glued from chapter 9)"
    )
