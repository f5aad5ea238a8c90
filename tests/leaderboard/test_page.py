"""The static page opens in headless Chromium: the DOM holds the ranking and reference tables, the
metadata and the plots, its script sorts the tables, and a screenshot shows them (kept under
tests/artifacts/ for a person to look at)."""

from __future__ import annotations

import html.parser
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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
    """Collects what the assertions need from the DOM Chromium serialised: table rows and images."""

    def __init__(self):
        super().__init__()
        self.rows: dict[tuple[str, str], list[str]] = {}  # (suite, table class) -> agent of each row
        self.titles: dict[str, str] = {}  # agent -> its row's tooltip (model metadata)
        self.cells: dict[tuple[str, str], list[list[str]]] = {}  # (suite, table class) -> each row's cells
        self.headers: dict[tuple[str, str], list[str]] = {}
        self.images: list[str] = []
        self._suite = None
        self._table = None
        self._cell = None

    def handle_starttag(self, tag, attributes):
        attributes = dict(attributes)
        if tag == "section" and "data-suite" in attributes:
            self._suite = attributes["data-suite"]
        elif tag == "table":
            self._table = (self._suite, attributes.get("class", "").split()[0])
        elif tag == "tr" and "data-agent" in attributes and self._table:
            self.rows.setdefault(self._table, []).append(attributes["data-agent"])
            self.cells.setdefault(self._table, []).append([])
            self.titles[attributes["data-agent"]] = attributes.get("title", "")
        elif tag in ("td", "th") and self._table:
            self._cell = tag
        elif tag == "img":
            self.images.append(attributes["src"])

    def handle_data(self, data):
        if self._cell == "td" and self.cells.get(self._table):
            self.cells[self._table][-1].append(data)
        elif self._cell == "th":
            self.headers.setdefault(self._table, []).append(data)

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag in ("td", "th"):
            self._cell = None


def _dom(url: str, profile: Path) -> _Dom:
    dom = _Dom()
    dom.feed(_run_browser(["--dump-dom", url], profile).stdout)
    return dom


def test_page_dom_and_screenshot(small_leaderboard, tmp_path):
    _, site = small_leaderboard
    url = (site / "index.html").as_uri()
    dom = _dom(url, tmp_path / "profile-dom")

    # Contestants in the ranking table, references (oracle, memoryless, chance) apart, per suite.
    references = {"oracle", "oracle_memoryless", "thompson_memoryless", "uniform"}
    assert dom.rows[("small-regret", "ranking")] == ["thompson", "linucb"]  # linucb skipped an env: after
    assert sorted(dom.rows[("small-regret", "references")]) == sorted(references)
    assert dom.rows[("small-success", "ranking")] == ["thompson"]
    assert sorted(dom.rows[("small-success", "references")]) == sorted(references)
    ranking = dom.cells[("small-regret", "ranking")]
    assert [row[0] for row in ranking] == ["1", "-"]
    header = dom.headers[("small-regret", "ranking")]
    gain = ranking[0][header.index("memory gain (norm.)")]
    assert gain != "-" and "[" in gain  # thompson's twin ran: a gain with its bootstrap interval
    # Every row's tooltip carries the agent's recorded metadata.
    assert dom.titles["thompson"].startswith("baseline thompson · commit ")
    # The agents' metadata table is on the page; the per-env memory-gain table too.
    assert ("small-regret", "metadata") in dom.rows and ("small-regret", "memory-gain") in dom.rows
    assert len(dom.images) == 2
    for source in dom.images:
        figure = site / source
        assert figure.is_file() and figure.stat().st_size > 10_000, source
        with Image.open(figure) as image:
            assert image.format == "PNG" and image.width > 300

    # The page's script sorts: by in-context regret ascending, then descending (the URL asks for it).
    dom = _dom(url + "?sort=in-context%20regret&order=asc", tmp_path / "profile-sort")
    header = dom.headers[("small-regret", "references")]
    column = header.index("in-context regret")
    regrets = [float(row[column].split(" ")[0]) for row in dom.cells[("small-regret", "references")]]
    assert regrets == sorted(regrets) and regrets[0] == 0.0
    dom = _dom(url + "?sort=in-context%20regret&order=desc", tmp_path / "profile-sort-desc")
    regrets = [float(row[column].split(" ")[0]) for row in dom.cells[("small-regret", "references")]]
    assert regrets == sorted(regrets, reverse=True) and regrets[-1] == 0.0

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "leaderboard_page.png"
    screenshot.unlink(missing_ok=True)
    _run_browser([f"--screenshot={screenshot}", "--window-size=1280,1600", url], tmp_path / "profile-shot")
    with Image.open(screenshot) as image:
        assert image.size == (1280, 1600)
        pixels = np.asarray(image.convert("L"), dtype=float)
    # Not blank: a page of text, table borders and plot lines has many grey levels and real contrast.
    assert pixels.std() > 10 and len(np.unique(pixels)) > 50
    # The plot is on screen: the figure's region (below the tables) is not plain background.
    assert (pixels[400:1600] < 200).mean() > 0.01
