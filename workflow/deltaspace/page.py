"""The report page a person reads: index.md and index.html from one list of sections.

The page opens with the answer and the headline table, then the plots, then every other table folded under a
heading the reader opens, and the provenance at its foot. index.html is one self-contained file: its own
small stylesheet and every image embedded (data: URIs), so it reads the same without a network and after the
folder is copied anywhere. index.md holds the same content, its images linked beside it.
"""
from __future__ import annotations

import base64
import html
import os
import re
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1200px; margin: 1.5em auto;
       padding: 0 1em; color: #1f2328; line-height: 1.45; font-size: 15px; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.3em; border-bottom: 1px solid #d0d7de; padding-bottom: 0.2em; margin-top: 1.6em; }
p.lead { color: #57606a; margin-top: 0; }
ul.answer li { margin-bottom: 0.5em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.86em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d7de; padding: 3px 7px; text-align: right; vertical-align: top; }
th { background: #f6f8fa; }
td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fbfcfd; }
details { margin: 0.5em 0; border: 1px solid #d0d7de; border-radius: 6px; padding: 0.3em 0.8em; }
summary { cursor: pointer; font-weight: 600; }
figure { margin: 1em 0 1.6em; }
figure img { max-width: 100%; border: 1px solid #eaeef2; }
figcaption { color: #57606a; font-size: 0.9em; max-width: 60em; }
footer { margin-top: 3em; color: #57606a; font-size: 0.8em; border-top: 1px solid #d0d7de; padding-top: 0.5em; }
"""


@dataclass(frozen=True)
class Section:
    """A heading and its Markdown; folded sections open on a click (<details>)."""
    title: str
    text: str
    folded: bool = False


@dataclass(frozen=True)
class Figure:
    """An image beside the page (a path relative to it) with a caption that says what is drawn."""
    path: str
    caption: str


def page_markdown(title: str, lead: str, answer: list[str], headline: Section, figures: list[Figure],
                  sections: list[Section], footer: str) -> str:
    """The page as Markdown: folded sections as <details> blocks, which GitHub and the HTML page both open."""
    md = [f"# {title}", "", lead, "", "## The answer", "", *[f"- {s}" for s in answer], "",
          f"## {headline.title}", "", headline.text, ""]
    if figures:
        md += ["## Plots", ""]
        for fig in figures:
            md += [f"![{fig.caption}]({fig.path})", "", f"*{fig.caption}*", ""]
    for section in sections:
        if section.folded:
            md += [f"<details><summary>{html.escape(section.title)}</summary>", "", section.text, "", "</details>", ""]
        else:
            md += [f"## {section.title}", "", section.text, ""]
    md += ["---", "", footer, ""]
    return "\n".join(md)


def page_html(title: str, lead: str, answer: list[str], headline: Section, figures: list[Figure],
              sections: list[Section], footer: str, folder: Path) -> str:
    """The same page as one HTML file: the Markdown rendered, the images read from `folder` and embedded."""
    render = MarkdownIt("commonmark", {"html": True}).enable("table").render
    body = [f"<h1>{html.escape(title)}</h1>", f'<p class="lead">{_inline(render(lead))}</p>',
            "<h2>The answer</h2>", '<ul class="answer">', *[f"<li>{_inline(render(s))}</li>" for s in answer], "</ul>",
            f"<h2>{html.escape(headline.title)}</h2>", render(headline.text)]
    if figures:
        body.append("<h2>Plots</h2>")
        for fig in figures:
            body.append(f'<figure><img src="{_data_uri(folder / fig.path)}" alt="{html.escape(fig.caption)}">'
                        f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>")
    for section in sections:
        if section.folded:
            body.append(f"<details><summary>{html.escape(section.title)}</summary>{render(section.text)}</details>")
        else:
            body += [f"<h2>{html.escape(section.title)}</h2>", render(section.text)]
    body.append(f"<footer>{render(footer)}</footer>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _inline(rendered: str) -> str:
    """A one-paragraph rendering without its <p> wrapper (inside <li> or an existing <p>)."""
    return re.sub(r"^<p>(.*)</p>\s*$", r"\1", rendered.strip(), flags=re.DOTALL)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def relative(path, folder: Path) -> str:
    """A path as the page links it: relative to the page's folder, with forward slashes."""
    return Path(os.path.relpath(path, folder)).as_posix()
