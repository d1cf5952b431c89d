"""The book's concept figures: each one shown on a page with alt text, each one well-formed SVG
with a title and description, and the drawn ones exactly what ``make_figures.py`` draws."""

from __future__ import annotations

import importlib.util
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "book" / "figures"
SVG = "{http://www.w3.org/2000/svg}"


def _page_texts() -> dict[str, str]:
    texts = {}
    for page in (ROOT / "book").iterdir():
        if page.suffix == ".md":
            texts[page.name] = page.read_text(encoding="utf-8")
        elif page.suffix == ".ipynb":
            cells = json.loads(page.read_text(encoding="utf-8"))["cells"]
            texts[page.name] = "\n".join(
                "".join(c["source"]) for c in cells if c["cell_type"] == "markdown"
            )
    return texts


def _figure_directives() -> dict[str, str]:
    """``{svg name: the directive's option block}`` for every ``{figure}`` on every page."""
    found = {}
    for text in _page_texts().values():
        for m in re.finditer(r"```\{figure\} figures/(\S+\.svg)\n((?::\w+:.*\n)*)", text):
            found[m.group(1)] = m.group(2)
    return found


def _load_script():
    spec = importlib.util.spec_from_file_location("make_figures", FIGURES / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_figure_is_shown_with_alt_text() -> None:
    shown = _figure_directives()
    for svg in sorted(FIGURES.glob("*.svg")):
        assert svg.name in shown, f"{svg.name} is on no page"
        alt = re.search(r":alt: (.*)", shown[svg.name])
        assert alt and len(alt.group(1).split()) >= 15, f"{svg.name}: alt text missing or short"


@pytest.mark.parametrize("svg", sorted(p.name for p in FIGURES.glob("*.svg")))
def test_figure_is_svg_with_title_and_description(svg: str) -> None:
    root = ET.parse(FIGURES / svg).getroot()
    assert root.tag == f"{SVG}svg"
    assert root.find(f"{SVG}title").text.strip()
    assert len(root.find(f"{SVG}desc").text.split()) >= 15
    # A white card under everything: the figure reads the same on the dark theme.
    first_rect = root.find(f"{SVG}rect")
    assert first_rect is not None and first_rect.get("class") == "bg"


def test_drawn_figures_are_what_the_script_draws(tmp_path, monkeypatch) -> None:
    script = _load_script()
    monkeypatch.setattr(script, "HERE", tmp_path)
    for draw in script.DRAWINGS:
        draw()
    drawn = sorted(p.name for p in tmp_path.glob("*.svg"))
    assert len(drawn) >= 10
    for name in drawn:
        committed = (FIGURES / name).read_text(encoding="utf-8")
        assert (tmp_path / name).read_text(encoding="utf-8") == committed, (
            f"{name} differs from what make_figures.py draws: run it and commit the result"
        )
