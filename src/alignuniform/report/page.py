"""Self-contained report pages: one HTML file with every figure embedded, and its Markdown twin.

A page is a title and a list of ``Section``s (text, an optional table, an optional figure).
The HTML embeds each PNG as base64 so the file opens anywhere without a server or its
folder; the Markdown links the PNGs next to it.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from alignuniform.io import atomic_write_text


@dataclass
class Table:
    """A table: ``columns`` names and ``rows`` of already formatted cells."""

    columns: list[str]
    rows: list[list[str]]

    def __post_init__(self) -> None:
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"table row {i} has {len(row)} cells for "
                                 f"{len(self.columns)} columns")


@dataclass
class Section:
    """One part of a page.

    Attributes:
        heading: Section title.
        text: Paragraphs separated by blank lines; plain text (escaped in HTML) except
            ``code`` spans in backquotes.
        table: Optional table shown after the text.
        figure: Optional PNG shown last; it must exist when the page is written.
        caption: Caption of the figure.
        bullets: Bullet points shown after the text (same markup as ``text``).
    """

    heading: str
    text: str = ""
    table: Table | None = None
    figure: Path | None = None
    caption: str = ""
    bullets: list[str] = field(default_factory=list)


def _inline_html(text: str) -> str:
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _png_data_uri(path: Path) -> str:
    data = Path(path).read_bytes()
    if not data.startswith(b"\x89PNG"):
        raise ValueError(f"{path} is not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #ddd;padding-bottom:.3em}
h2{font-size:1.25em;margin-top:1.8em}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.35em .7em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.88em;color:#555}code{background:#f4f4f4;padding:0 .2em}
"""


def render_html(title: str, sections: list[Section]) -> str:
    """The page as one HTML document with figures embedded as base64 data URIs."""
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{html.escape(title)}</title>", f"<style>{_CSS}</style>", "</head>",
           "<body>", f"<h1>{html.escape(title)}</h1>"]
    for i, sec in enumerate(sections):
        out.append(f'<section id="s{i}"><h2>{html.escape(sec.heading)}</h2>')
        for para in filter(None, (p.strip() for p in sec.text.split("\n\n"))):
            out.append(f"<p>{_inline_html(para)}</p>")
        if sec.bullets:
            out.append("<ul>" + "".join(f"<li>{_inline_html(b)}</li>" for b in sec.bullets)
                       + "</ul>")
        if sec.table is not None:
            head = "".join(f"<th>{html.escape(c)}</th>" for c in sec.table.columns)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                           for row in sec.table.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        if sec.figure is not None:
            alt = html.escape(sec.caption or sec.heading)
            out.append(f'<figure><img src="{_png_data_uri(sec.figure)}" alt="{alt}">'
                       f"<figcaption>{_inline_html(sec.caption)}</figcaption></figure>")
        out.append("</section>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(title: str, sections: list[Section], base: Path) -> str:
    """The page as Markdown, figures linked relative to ``base`` (the page's folder)."""
    out = [f"# {title}", ""]
    for sec in sections:
        out += [f"## {sec.heading}", ""]
        for para in filter(None, (p.strip() for p in sec.text.split("\n\n"))):
            out += [para, ""]
        if sec.bullets:
            out += [f"- {b}" for b in sec.bullets] + [""]
        if sec.table is not None:
            out.append("| " + " | ".join(map(_md_cell, sec.table.columns)) + " |")
            out.append("|" + "|".join([":---"] + ["---:"] * (len(sec.table.columns) - 1)) + "|")
            out += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in sec.table.rows]
            out.append("")
        if sec.figure is not None:
            rel = Path(os.path.relpath(sec.figure, base)).as_posix()
            out += [f"![{sec.caption or sec.heading}]({rel})", ""]
            if sec.caption:
                out += [f"*{sec.caption}*", ""]
    return "\n".join(out)


def write_page(out_dir: str | Path, title: str, sections: list[Section]) -> dict[str, Path]:
    """Write ``report.html`` (self-contained) and ``report.md`` into ``out_dir``.

    Raises:
        FileNotFoundError: If a section's figure does not exist.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for sec in sections:
        if sec.figure is not None and not Path(sec.figure).is_file():
            raise FileNotFoundError(f"figure {sec.figure} of section {sec.heading!r} is missing")
    return {
        "html": atomic_write_text(out_dir / "report.html", render_html(title, sections)),
        "markdown": atomic_write_text(out_dir / "report.md",
                                      render_markdown(title, sections, out_dir)),
    }
