"""report.html looked at as a person would: headless Chromium at 1280 x 800.

The page must show no console error, every figure loaded with a non-zero size, the
findings table whole in the first screen and no horizontal scroll; the first screen is
saved as ``report.png`` in the report folder and linked from ``summary.md``.

Without Chromium these tests skip, except where ``EMOBENCH_REQUIRE_BROWSER=1`` (CI:
``.ci/run`` installs Debian's ``chromium`` and sets it), where a missing browser fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_report import _predictions, _write_run

from emobench.report.browser import VIEWPORT, check_report, find_chromium, judge
from emobench.report.build import ReportOptions, report_run

REQUIRED = os.environ.get("EMOBENCH_REQUIRE_BROWSER") == "1"


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = find_chromium()
    if exe is None:
        if REQUIRED:
            pytest.fail("EMOBENCH_REQUIRE_BROWSER=1 but no Chromium on PATH")
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium)")
    return exe


@pytest.fixture(scope="module")
def shot(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    predictions = _predictions(np.random.default_rng(7))
    run = _write_run(tmp_path_factory.mktemp("run") / "r", predictions)
    warnings: list[str] = []
    out = report_run(
        run.path, ReportOptions(n_resamples=100, screenshot=True), warn=warnings.append
    )
    return out, warnings


def test_report_reads_in_a_browser(shot):
    out, warnings = shot
    # report_run ran the browser check: a problem would be a warning
    assert not [w for w in warnings if "Chromium" in w], warnings
    seen = check_report(out / "report.html", None)
    assert seen.ok, seen.problems
    assert seen.images and all(im["ok"] and im["nw"] > 0 for im in seen.images)
    shown = [im for im in seen.images if not im["folded"]]
    assert len(shown) >= 3 and all(im["w"] > 0 and im["h"] > 0 for im in shown)
    assert seen.table is not None and 0 <= seen.table["top"] < seen.table["bottom"] <= 800
    assert seen.scroll_width <= VIEWPORT[0]


def test_screenshot_saved_and_linked(shot):
    out, _ = shot
    with Image.open(out / "report.png") as im:
        assert im.size == VIEWPORT
        assert len(set(im.convert("L").resize((64, 40)).tobytes())) > 5  # not a blank page
    summary = (out / "summary.md").read_text()
    assert "](report.png)" in summary.split("## ", 1)[0]  # linked above the details


def test_check_catches_what_a_reader_would_meet(chromium, tmp_path):
    """A page with a broken image, a console error, a wide element and the findings
    table far below the first screen fails each check."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
        "<div style='width:3000px'>wide</div><div style='height:2000px'></div>"
        "<img src='data:image/png;base64,AAAA'>"
        "<script>console.error('boom')</script>"
        "<table class='findings'><tr><td>x</td></tr></table></body></html>"
    )
    seen = check_report(page, tmp_path / "bad.png")
    text = "\n".join(seen.problems)
    assert "boom" in text
    assert "did not load" in text
    assert "not all in the first screen" in text
    assert "horizontal scroll" in text
    assert (tmp_path / "bad.png").is_file()


def test_judge_without_browser():
    """The rules themselves (no browser needed): a folded image need only have loaded."""
    found = {
        "errors": [],
        "images": [{"ok": True, "nw": 10, "nh": 10, "w": 0, "h": 0, "folded": True}],
        "table": {"top": 80, "bottom": 400, "w": 1000, "h": 320},
        "scroll_width": 1280,
        "client_width": 1280,
    }
    assert judge(found, [], VIEWPORT).ok
    found["images"][0]["folded"] = False
    assert not judge(found, [], VIEWPORT).ok
    assert not judge({**found, "images": []}, ["Uncaught x"], VIEWPORT).ok


def test_report_open_without_a_browser(tmp_path, monkeypatch, capsys):
    import webbrowser

    from emobench.report.cli import open_report

    page = tmp_path / "report.html"
    page.write_text("<html></html>")
    monkeypatch.setattr(webbrowser, "open", lambda url: False)
    assert open_report(page) is False
    assert "no web browser found" in capsys.readouterr().err
    seen: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: seen.append(url) or True)
    assert open_report(page) is True
    assert seen == [page.resolve().as_uri()]
    assert open_report(tmp_path / "missing.html") is False
