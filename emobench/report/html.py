"""Render the report document as ONE self-contained HTML file.

Figures are embedded as base64 PNG data URIs, re-encoded with a 256-colour palette
(:func:`compact_png`: a third to a fifth of the size, no visible change on plots), and the
CSS is inline, so ``report.html`` can be mailed or archived alone: it references no
external file, font or script. Sections whose heading has ``collapse`` are folded into
``<details>`` elements; wide tables scroll inside their own box, so the page itself never
scrolls sideways.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from emobench.report.document import (
    CODE_SPAN,
    Bullets,
    Code,
    Document,
    Figure,
    FigureGrid,
    Heading,
    Paragraph,
    Table,
)

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1rem auto;
       max-width: 1200px; padding: 0 1rem; color: #1a1a1a; line-height: 1.45;
       overflow-wrap: anywhere; }
h1 { border-bottom: 2px solid #0072B2; padding-bottom: .3rem; font-size: 1.5rem;
     margin: .4rem 0 .6rem; }
.tw { max-width: 100%; overflow-x: auto; }
table.findings { font-size: .9rem; width: 100%; }
table.findings td { vertical-align: top; }
table.findings th { white-space: nowrap; }
details { margin: .4rem 0; border-top: 1px solid #ddd; }
details > summary { cursor: pointer; padding: .3rem 0; }
details > summary h2 { display: inline; border: 0; font-size: 1.2rem; margin: 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr));
        gap: 1rem 1.5rem; margin: 1rem 0 1.6rem; }
.grid figure { width: auto; }
.grid h4 { margin: 0 0 .3rem; font-size: .95rem; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
h3 { margin-top: 1.6rem; }
table { border-collapse: collapse; margin: .6rem 0 1.2rem; font-size: .85rem; }
th, td { border: 1px solid #d0d0d0; padding: .25rem .5rem; }
th { background: #f2f5f8; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafafa; }
caption { caption-side: top; text-align: left; font-style: italic; padding-bottom: .3rem; }
.figs { display: flex; flex-wrap: wrap; gap: 1rem 1.5rem; align-items: flex-start;
        margin: 1rem 0 1.6rem; }
figure { margin: 0; max-width: 100%; }
figure img { width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .85rem; color: #444; }
code { background: #f3f3f3; padding: 0 .2rem; border-radius: 3px; }
pre { background: #f6f8fa; padding: .8rem; overflow-x: auto; font-size: .8rem; }
""".strip()


def _inline(text: str) -> str:
    """Escape text for HTML and turn `backtick` spans into <code>."""
    return CODE_SPAN.sub(lambda m: f"<code>{m.group(1)}</code>", html.escape(text, quote=False))


def _table(table: Table) -> str:
    numeric = table.numeric or tuple(False for _ in table.header)
    kind = html.escape(table.kind, quote=True)
    parts = ['<div class="tw">' + (f'<table class="{kind}">' if kind else "<table>")]
    if table.caption:
        parts.append(f"<caption>{_inline(table.caption)}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in table.header))
    parts.append("</tr></thead><tbody>")
    for row in table.rows:
        cells = "".join(
            f'<td class="num">{_inline(c)}</td>' if n else f"<td>{_inline(c)}</td>"
            for c, n in zip(row, numeric, strict=False)
        )
        parts.append(f"<tr>{cells}</tr>")
    parts.append("</tbody></table></div>")
    return "\n".join(parts)


def _png_width(data: bytes) -> int | None:
    """Pixel width from a PNG header (None if the bytes are not a PNG)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        return None
    return int.from_bytes(data[16:20], "big")


def compact_png(raw: bytes) -> bytes:
    """``raw`` PNG re-encoded with an adaptive 256-colour palette (no dithering), or
    ``raw`` itself when that is not smaller or the bytes are not an image."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(raw)) as im:
            pal = im.convert("RGB").quantize(
                colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
            )
        buf = io.BytesIO()
        pal.save(buf, format="PNG", optimize=False, compress_level=9)
    except (OSError, ValueError):
        return raw
    out = buf.getvalue()
    return out if len(out) < len(raw) else raw


def _figure(fig: Figure, root: Path, *, fixed: bool = True) -> str:
    raw = (root / fig.png).read_bytes()
    data = base64.b64encode(compact_png(raw)).decode("ascii")
    alt = html.escape(fig.caption, quote=True)
    width = _png_width(raw) if fixed else None
    size = f' style="width:{width}px"' if width else ""
    return (
        f'<figure{size}><img alt="{alt}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_inline(fig.caption)}</figcaption></figure>"
    )


def _grid(grid: FigureGrid, root: Path) -> str:
    titles = grid.titles or tuple("" for _ in grid.figures)
    cells = [
        "<div>" + (f"<h4>{_inline(t)}</h4>" if t else "") + _figure(f, root, fixed=False) + "</div>"
        for t, f in zip(titles, grid.figures, strict=False)
    ]
    return '<div class="grid">' + "".join(cells) + "</div>"


def render_html(doc: Document, root: Path) -> str:
    """Render ``doc`` to a standalone HTML page; figure files are read from ``root``."""
    body: list[str] = [f"<h1>{_inline(doc.title)}</h1>"]
    in_figs = in_details = False
    for block in doc.blocks:
        # consecutive figures share a wrapping row, so single-column figures sit side by side
        if isinstance(block, Figure) != in_figs:
            body.append('<div class="figs">' if not in_figs else "</div>")
            in_figs = not in_figs
        if isinstance(block, Heading) and block.level <= 2 and in_details:
            body.append("</details>")
            in_details = False
        if isinstance(block, Heading) and block.collapse and block.level == 2:
            body.append(f"<details><summary><h2>{_inline(block.text)}</h2></summary>")
            in_details = True
        elif isinstance(block, Heading):
            level = min(max(block.level, 1), 6)
            body.append(f"<h{level}>{_inline(block.text)}</h{level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{_inline(item)}</li>" for item in block.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            body.append(_table(block))
        elif isinstance(block, Figure):
            body.append(_figure(block, root))
        elif isinstance(block, FigureGrid):
            body.append(_grid(block, root))
        elif isinstance(block, Code):
            body.append(f"<pre><code>{html.escape(block.text, quote=False)}</code></pre>")
    if in_figs:
        body.append("</div>")
    if in_details:
        body.append("</details>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(doc.title)}</title>\n<style>\n{CSS}\n</style>\n</head>\n"
        "<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )
