"""The static page opens in headless Chromium: the DOM holds the ranking tables and the plots, and a
screenshot shows them (kept under tests/artifacts/ for a person to look at)."""

from __future__ import annotations

import html.parser
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.leaderboard.conftest import AGENTS

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no chromium binary on PATH; `make browser` installs Debian's chromium package")


def _run_browser(arguments: list[str], profile: Path) -> subprocess.CompletedProcess:
    command = [_browser(), *BROWSER_FLAGS, f"--user-data-dir={profile}", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


class _Dom(html.parser.HTMLParser):
    """Collects what the assertions need from the DOM Chromium serialised: ranking rows and images."""

    def __init__(self):
        super().__init__()
        self.ranking_rows: dict[str, list[str]] = {}  # suite -> agent of each ranking row
        self.images: list[str] = []
        self._suite = None
        self._table = None

    def handle_starttag(self, tag, attributes):
        attributes = dict(attributes)
        if tag == "section" and "data-suite" in attributes:
            self._suite = attributes["data-suite"]
        elif tag == "table":
            self._table = attributes.get("class")
        elif tag == "tr" and "data-agent" in attributes and self._table == "ranking":
            self.ranking_rows.setdefault(self._suite, []).append(attributes["data-agent"])
        elif tag == "img":
            self.images.append(attributes["src"])

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None


def test_page_dom_and_screenshot(small_leaderboard, tmp_path):
    _, site = small_leaderboard
    url = (site / "index.html").as_uri()
    dom = _Dom()
    dom.feed(_run_browser(["--dump-dom", url], tmp_path / "profile-dom").stdout)

    # One ranking row per agent that played the suite, and one figure per suite whose PNG exists.
    assert sorted(dom.ranking_rows["small-regret"]) == sorted(AGENTS)
    assert sorted(dom.ranking_rows["small-success"]) == sorted(set(AGENTS) - {"linucb"})
    assert dom.ranking_rows["small-regret"][0] == "oracle"  # zero regret ranks first
    assert len(dom.images) == 2
    for source in dom.images:
        figure = site / source
        assert figure.is_file() and figure.stat().st_size > 10_000, source
        with Image.open(figure) as image:
            assert image.format == "PNG" and image.width > 300

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "leaderboard_page.png"
    screenshot.unlink(missing_ok=True)
    _run_browser([f"--screenshot={screenshot}", "--window-size=1280,1600", url], tmp_path / "profile-shot")
    with Image.open(screenshot) as image:
        assert image.size == (1280, 1600)
        pixels = np.asarray(image.convert("L"), dtype=float)
    # Not blank: a page of text, table borders and plot lines has many grey levels and real contrast.
    assert pixels.std() > 10 and len(np.unique(pixels)) > 50
    # The plot is on screen: the figure's region (below the first table) is not plain background.
    assert (pixels[400:1600] < 200).mean() > 0.01
