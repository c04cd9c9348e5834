"""A self-contained HTML report: pictures, metric tables, the training curve.

Used by ``deepsdf demo``; every picture is a PNG/GIF file beside ``index.html`` (relative
links), so the folder can be copied or served as it is.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from deepsdf_preprocess.errors import InputError

__all__ = ["training_curve", "Report", "Html", "link"]


class Html(str):
    """Markup that the report inserts as it is (a link in a table cell); plain strings are
    escaped."""


def link(text: str, href: str) -> Html:
    """A relative link, for a table cell or a paragraph."""
    return Html(f'<a href="{html.escape(href)}">{html.escape(text)}</a>')


def training_curve(history, path) -> Path:
    """PNG plot of the mean training loss per epoch (log scale) from a checkpoint's
    ``history`` rows ``[epoch, loss, learning rate]``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot

    from deepsdf_preprocess.contract import atomic_path

    if not history:
        raise InputError("the checkpoint has no training history to plot")
    epochs = [row[0] for row in history]
    losses = [row[1] for row in history]
    figure, axis = pyplot.subplots(figsize=(6, 3.2), dpi=100)
    axis.plot(epochs, losses, color="#34669a", linewidth=1.2)
    axis.set_yscale("log")
    axis.set_xlabel("epoch")
    axis.set_ylabel("mean loss (clamped L1 + prior)")
    axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    pyplot.close(figure)
    return Path(path)


def code_map(points, path) -> Path:
    """PNG map of codes on their first two principal directions: ``points`` are ``(x, y,
    class name, held out)`` in σ; training shapes filled, held-out ones as rings, a colour per
    class."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot

    from deepsdf_preprocess.contract import atomic_path

    figure, axis = pyplot.subplots(figsize=(5.2, 4.4), dpi=100)
    palette = pyplot.get_cmap("tab10")
    classes = sorted({point[2] for point in points})
    for index, name in enumerate(classes):
        for held in (False, True):
            chosen = [(x, y) for x, y, c, h in points if c == name and h == held]
            if not chosen:
                continue
            x, y = zip(*chosen)
            colour = palette(index % 10)
            axis.scatter(x, y, s=40 if held else 20, facecolors="none" if held else colour,
                         edgecolors=colour, linewidths=1.4 if held else 0.5,
                         label=f"{name} ({'held out' if held else 'training'})")
    axis.set_xlabel("first principal direction of the codes (σ)")
    axis.set_ylabel("second (σ)")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    pyplot.close(figure)
    return Path(path)


@dataclass
class Report:
    """Sections of headings, paragraphs, tables and pictures, written as ``index.html``."""

    title: str
    parts: list = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str, *, css: str = "") -> None:
        body = text if isinstance(text, Html) else html.escape(text)
        self.parts.append(f'<p class="{css}">{body}</p>' if css else f"<p>{body}</p>")

    def raw(self, markup: str) -> None:
        """Insert markup as it is (the interactive viewer)."""
        self.parts.append(markup)

    def picture(self, relative_path: str, caption: str) -> None:
        self.parts.append(f'<figure><img src="{html.escape(relative_path)}" alt="'
                          f'{html.escape(caption)}"><figcaption>{html.escape(caption)}'
                          "</figcaption></figure>")

    def table(self, header, rows, *, caption: str = "") -> None:
        head = "".join(f"<th>{_cell(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row)
                       + "</tr>" for row in rows)
        title = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.parts.append(f"<table>{title}<thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
                          "</table>")

    def write(self, path) -> Path:
        """Write the page to ``path`` (an ``.html`` file; links are relative to its folder)."""
        from deepsdf_preprocess.contract import atomic_path

        page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>"
                f"{html.escape(self.title)}</title><style>{_STYLE}</style></head><body>"
                f"<h1>{html.escape(self.title)}</h1>" + "\n".join(self.parts)
                + "</body></html>\n")
        path = Path(path)
        with atomic_path(path) as temporary:
            Path(temporary).write_text(page, encoding="utf-8")
        return path


def _cell(value) -> str:
    if isinstance(value, Html):
        return value
    if isinstance(value, float):
        return html.escape(f"{value:.4g}")
    return html.escape(str(value))


_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 1em 0; } img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 90%; }
caption { text-align: left; color: #555; font-size: 90%; caption-side: bottom; padding-top: 4px; }
p.note { background: #f4f6fa; border-left: 3px solid #34669a; padding: 6px 10px; }
canvas { border: 1px solid #ddd; max-width: 100%; } .hint { color: #777; font-size: 90%; }
"""
