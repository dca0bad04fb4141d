"""A tiny document model rendered to both ``summary.md`` and ``report.html``.

The report is built once as a list of blocks (headings, paragraphs, tables, figures, code)
and rendered twice, so the markdown and the HTML always say the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Heading:
    """A section heading (level 1 = document title)."""

    text: str
    level: int = 2


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
    """A table of already-formatted cells; ``numeric`` columns are right-aligned."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""
    numeric: tuple[bool, ...] = ()


@dataclass(frozen=True)
class Figure:
    """A saved figure: ``png``/``svg`` are paths relative to the report folder."""

    png: str
    svg: str
    caption: str


@dataclass(frozen=True)
class Code:
    """A preformatted block (configuration, versions)."""

    text: str
    lang: str = ""


Block = Heading | Paragraph | Bullets | Table | Figure | Code


@dataclass
class Document:
    """An ordered list of blocks with a title."""

    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        """Append blocks in order."""
        self.blocks.extend(blocks)


def _md_cell(text: str) -> str:
    """Escape a table cell for GitHub-flavoured markdown (pipes and newlines)."""
    return text.replace("|", "\\|").replace("\n", " ")


def table_markdown(table: Table) -> str:
    """Render one table as a GitHub-flavoured markdown table."""
    numeric = table.numeric or tuple(False for _ in table.header)
    lines = []
    if table.caption:
        lines += [f"*{table.caption}*", ""]
    lines.append("| " + " | ".join(_md_cell(h) for h in table.header) + " |")
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    return "\n".join(lines)


def render_markdown(doc: Document) -> str:
    """Render the document as markdown; figures link to their PNG and SVG files."""
    out: list[str] = [f"# {doc.title}", ""]
    for block in doc.blocks:
        if isinstance(block, Heading):
            out += ["#" * max(1, block.level) + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            out += [block.text, ""]
        elif isinstance(block, Bullets):
            out += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            out += [table_markdown(block), ""]
        elif isinstance(block, Figure):
            out += [
                f"![{block.caption}]({block.png})",
                "",
                f"*{block.caption}* ([PNG]({block.png}), [SVG]({block.svg}))",
                "",
            ]
        elif isinstance(block, Code):
            out += [f"```{block.lang}", block.text.rstrip("\n"), "```", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def figures_in(blocks: Sequence[Block]) -> list[Figure]:
    """The figure blocks of a document, in order."""
    return [b for b in blocks if isinstance(b, Figure)]
