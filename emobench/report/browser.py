"""Look at ``report.html`` as a person would: headless Chromium at 1280 × 800.

:func:`check_report` loads a copy of the page with one read-only script added at the top
of ``<head>``: it records script errors and ``console.error`` calls, and on ``load``
measures every image (loaded, natural and rendered size; images inside a folded
``<details>`` need only have loaded), the findings table's position, and the page's
scroll width, then logs them as one ``EMOBENCH-CHECK {json}`` console line. Chromium runs
once (``--screenshot``, console on stderr), offline and with a fresh profile, and writes
the first screen as a PNG. Any other console line is a console error of the page. Plain
subprocess and JSON; no browser download, no DevTools client.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

#: The first screen the report is checked at.
VIEWPORT = (1280, 800)
#: Names of the Debian / Ubuntu / upstream Chromium executables, first found wins.
EXECUTABLES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Flags for a headless, offline, throw-away browser (root needs --no-sandbox).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
)
MARK = "EMOBENCH-CHECK "

_PROBE = """<script>(function(){
var errs=[];
window.addEventListener('error',function(e){errs.push(String(e.message||e.type));},true);
var ce=console.error;console.error=function(){errs.push([].join.call(arguments,' '));
ce.apply(console,arguments);};
window.addEventListener('load',function(){
var imgs=[].map.call(document.images,function(im){var r=im.getBoundingClientRect();
var d=im.closest('details');return {ok:im.complete&&im.naturalWidth>0,nw:im.naturalWidth,
nh:im.naturalHeight,w:r.width,h:r.height,folded:!!(d&&!d.open)};});
var t=document.querySelector('table.findings'),tr=null;
if(t){var b=t.getBoundingClientRect();tr={top:b.top+window.scrollY,
bottom:b.bottom+window.scrollY,w:b.width,h:b.height};}
console.log('EMOBENCH-CHECK '+JSON.stringify({errors:errs,images:imgs,table:tr,
scroll_width:document.documentElement.scrollWidth,
client_width:document.documentElement.clientWidth}));});})();</script>"""

_CONSOLE = re.compile(r':CONSOLE[^\]]*\] "(.*)", source: (.*)$')


@dataclass
class BrowserCheck:
    """What the browser saw: ``problems`` (empty when the page passed), the probe's
    measurements and the screenshot written (None when it was not)."""

    problems: list[str] = field(default_factory=list)
    images: list[dict[str, object]] = field(default_factory=list)
    table: dict[str, float] | None = None
    scroll_width: int = 0
    client_width: int = 0
    screenshot: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def find_chromium() -> str | None:
    """The Chromium executable on PATH (``EMOBENCH_CHROMIUM`` overrides), or None."""
    override = os.environ.get("EMOBENCH_CHROMIUM")
    if override:
        return shutil.which(override)
    return next((p for name in EXECUTABLES if (p := shutil.which(name))), None)


def _with_probe(page: str) -> str:
    """``page`` with the probe as the first element of ``<head>``."""
    i = page.find("<head>")
    if i < 0:
        return _PROBE + page
    return page[: i + 6] + "\n" + _PROBE + page[i + 6 :]


def judge(found: dict[str, object], console: list[str], viewport: tuple[int, int]) -> BrowserCheck:
    """The problems a reader would meet, from the probe's record and other console lines."""
    out = BrowserCheck(
        images=list(found.get("images") or []),  # type: ignore[arg-type]
        table=found.get("table"),  # type: ignore[arg-type]
        scroll_width=int(found.get("scroll_width") or 0),  # type: ignore[call-overload]
        client_width=int(found.get("client_width") or 0),  # type: ignore[call-overload]
    )
    out.problems += [f"console: {line}" for line in console]
    out.problems += [f"script error: {e}" for e in found.get("errors") or []]  # type: ignore[union-attr]
    for i, im in enumerate(out.images, 1):
        shown = im.get("folded") or (im.get("w", 0) > 0 and im.get("h", 0) > 0)  # type: ignore[operator]
        if not im.get("ok") or not shown:
            out.problems.append(f"figure {i} did not load or has no size ({im})")
    width, height = viewport
    if out.table is None:
        out.problems.append("no findings table")
    elif out.table["top"] < 0 or out.table["bottom"] > height:
        out.problems.append(
            f"the findings table spans {out.table['top']:.0f}–{out.table['bottom']:.0f} px: "
            f"not all in the first screen (0–{height} px)"
        )
    if out.scroll_width > max(out.client_width, width):
        out.problems.append(
            f"horizontal scroll: the page is {out.scroll_width} px wide in a {width} px window"
        )
    return out


def check_report(
    html_path: Path | str,
    screenshot: Path | str | None = None,
    *,
    viewport: tuple[int, int] = VIEWPORT,
    timeout_s: float = 60.0,
    executable: str | None = None,
) -> BrowserCheck:
    """Open ``html_path`` in headless Chromium at ``viewport``, write the first screen to
    ``screenshot`` (None: not kept) and return what it saw. Raises ``FileNotFoundError``
    without Chromium, ``RuntimeError`` when the browser gives no result."""
    exe = executable or find_chromium()
    if exe is None:
        raise FileNotFoundError("no Chromium on PATH (Debian: apt-get install chromium)")
    page = Path(html_path).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="emobench-browser-") as tmp:
        probe = Path(tmp) / "page" / "report.html"
        probe.parent.mkdir()
        probe.write_text(_with_probe(page), encoding="utf-8")
        shot = Path(tmp) / "screen.png"
        cmd = [
            exe,
            *FLAGS,
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"--window-size={viewport[0]},{viewport[1]}",
            f"--screenshot={shot}",
            probe.as_uri(),
        ]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"Chromium took longer than {timeout_s:.0f} s") from exc
        found: dict[str, object] | None = None
        console: list[str] = []
        for line in proc.stderr.splitlines():
            m = _CONSOLE.search(line)
            if m is None:
                continue
            if m.group(1).startswith(MARK):
                found = json.loads(m.group(1)[len(MARK) :])
            else:
                console.append(m.group(1))
        if found is None:
            tail = proc.stderr.strip().splitlines()[-3:]
            raise RuntimeError(f"Chromium gave no result (exit {proc.returncode}): {tail}")
        out = judge(found, console, viewport)
        if screenshot is not None and shot.is_file():
            dest = Path(screenshot)
            shutil.copyfile(shot, dest)
            out.screenshot = dest
        elif screenshot is not None:
            out.problems.append("Chromium wrote no screenshot")
    return out
