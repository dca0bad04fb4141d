"""A tiny document model rendered to both ``summary.md`` and ``report.html``.

The report is built once as a list of blocks (headings, paragraphs, tables, figures, code)
and rendered twice, so the markdown and the HTML always say the same thing.

Block text is plain text in which `backticks` mark code, whatever its source: model names
and answers, clip ids, file names and config values reach it unchanged. Each renderer
escapes all of it (:func:`md_inline` here, :func:`emobench.report.html._inline`), so a
``<script>`` in a model's answer is shown, never run, and a ``|`` cannot split a table row.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

#: A `code` span of block text (both renderers split text the same way).
CODE_SPAN = re.compile(r"`([^`]+)`")
#: Markdown link syntax (``[a](b)``, ``[a][b]``, ``[a]: b``) neutralised in plain text.
_LINK = re.compile(r"\](?=[(\[:])")


@dataclass(frozen=True)
class Heading:
    """A section heading (level 1 = document title); ``collapse``: in HTML, the section
    (up to the next level-2 heading) is folded into a ``<details>`` element."""

    text: str
    level: int = 2
    collapse: bool = False


@dataclass(frozen=True)
class Paragraph:
    """A paragraph; `backticks` mark code, nothing else is interpreted."""

    text: str


@dataclass(frozen=True)
class Bullets:
    """A bullet list of plain-text items (`backticks` mark code)."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table of already-formatted cells; ``numeric`` columns are right-aligned; ``kind``
    names it for styling (``findings``: the report's opening table)."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""
    numeric: tuple[bool, ...] = ()
    kind: str = ""


@dataclass(frozen=True)
class Figure:
    """A saved figure: ``png``/``svg`` are paths relative to the report folder."""

    png: str
    svg: str
    caption: str


@dataclass(frozen=True)
class FigureGrid:
    """Figures shown side by side (HTML: a grid; markdown: tables of two columns), each
    with a short ``titles`` line above it (the finding it shows)."""

    figures: tuple[Figure, ...]
    titles: tuple[str, ...] = ()


@dataclass(frozen=True)
class MdImage:
    """An image linked from ``summary.md`` only (the HTML's own screenshot: not in it)."""

    path: str
    alt: str


@dataclass(frozen=True)
class Code:
    """A preformatted block (configuration, versions)."""

    text: str
    lang: str = ""


Block = Heading | Paragraph | Bullets | Table | Figure | FigureGrid | MdImage | Code


@dataclass
class Document:
    """An ordered list of blocks with a title."""

    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        """Append blocks in order."""
        self.blocks.extend(blocks)


def _md_plain(text: str) -> str:
    """Text outside code spans: backslashes and stray backticks escaped (so no code span
    opens or closes where the renderer saw none), ``$`` escaped (no math), ``&``, ``<``,
    ``>`` as HTML entities (no raw HTML), and link brackets broken up (no links or
    images)."""
    text = text.replace("\\", "\\\\").replace("`", "\\`").replace("$", "\\$")
    return _LINK.sub(r"]\\", html.escape(text, quote=False))


def md_inline(text: str) -> str:
    """Block text as markdown: `code` spans kept literal (on one line), everything else
    escaped by :func:`_md_plain`; the one escaping point of ``summary.md``."""
    out: list[str] = []
    pos = 0
    for m in CODE_SPAN.finditer(text):
        out.append(_md_plain(text[pos : m.start()]))
        if out and m.start() == pos and pos > 0:
            out.append(" ")  # two spans back to back would read as one ``-delimited span
        out.append("`" + " ".join(m.group(1).splitlines()) + "`")
        pos = m.end()
    out.append(_md_plain(text[pos:]))
    return "".join(out)


def _md_cell(text: str) -> str:
    """Escape a table cell for GitHub-flavoured markdown (text, pipes and newlines)."""
    return " ".join(md_inline(text).splitlines()).replace("|", "\\|")


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def table_markdown(table: Table) -> str:
    """Render one table as a GitHub-flavoured markdown table."""
    numeric = table.numeric or tuple(False for _ in table.header)
    lines = []
    if table.caption:
        lines += [f"*{_md_cell(table.caption)}*", ""]
    lines.append("| " + " | ".join(_md_cell(h) for h in table.header) + " |")
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    return "\n".join(lines)


def _md_figure(fig: Figure) -> list[str]:
    """A figure as markdown: the PNG, then its caption with links to both files."""
    caption = _md_cell(fig.caption)
    alt = caption.replace("[", "\\[").replace("]", "\\]")
    return [f"![{alt}]({fig.png})", "", f"*{caption}* ([PNG]({fig.png}), [SVG]({fig.svg}))", ""]


#: Figures per row of a markdown figure grid.
MD_GRID_COLUMNS = 2


def _md_grid(grid: FigureGrid) -> list[str]:
    """Figures side by side: a table per row of :data:`MD_GRID_COLUMNS` (titles as its
    header, the PNGs, their captions with links to both files), which GitHub and most
    markdown viewers draw as columns."""
    titles = list(grid.titles) + [""] * (len(grid.figures) - len(grid.titles))
    out: list[str] = []
    for start in range(0, len(grid.figures), MD_GRID_COLUMNS):
        figs = grid.figures[start : start + MD_GRID_COLUMNS]
        heads = [f"**{_md_cell(t)}**" if t else " " for t in titles[start : start + len(figs)]]
        images, captions = [], []
        for fig in figs:
            caption = _md_cell(fig.caption)
            alt = caption.replace("[", "\\[").replace("]", "\\]")
            images.append(f"![{alt}]({fig.png})")
            captions.append(f"*{caption}* ([PNG]({fig.png}), [SVG]({fig.svg}))")
        out += [
            "| " + " | ".join(heads) + " |",
            "|" + "|".join("---" for _ in figs) + "|",
            "| " + " | ".join(images) + " |",
            "| " + " | ".join(captions) + " |",
            "",
        ]
    return out


def render_markdown(doc: Document) -> str:
    """Render the document as markdown; figures link to their PNG and SVG files."""
    out: list[str] = [f"# {_md_cell(doc.title)}", ""]
    for block in doc.blocks:
        if isinstance(block, Heading):
            out += ["#" * max(1, block.level) + " " + _md_cell(block.text), ""]
        elif isinstance(block, Paragraph):
            out += [md_inline(block.text), ""]
        elif isinstance(block, Bullets):
            out += [f"- {_md_cell(item)}" for item in block.items] + [""]
        elif isinstance(block, Table):
            out += [table_markdown(block), ""]
        elif isinstance(block, Figure):
            out += _md_figure(block)
        elif isinstance(block, FigureGrid):
            out += _md_grid(block)
        elif isinstance(block, MdImage):
            alt = _md_cell(block.alt).replace("[", "\\[").replace("]", "\\]")
            out += [f"![{alt}]({block.path})", ""]
        elif isinstance(block, Code):
            fence = _fence(block.text)
            out += [f"{fence}{block.lang}", block.text.rstrip("\n"), fence, ""]
    return "\n".join(out).rstrip("\n") + "\n"


def figures_in(blocks: Sequence[Block]) -> list[Figure]:
    """The figure blocks of a document (those of a grid too), in order."""
    out: list[Figure] = []
    for b in blocks:
        if isinstance(b, Figure):
            out.append(b)
        elif isinstance(b, FigureGrid):
            out.extend(b.figures)
    return out
