"""A DataFrame's first rows as HTML for notebooks, images as thumbnails.
Text is escaped and the output is bounded: a few rows, short cells, small
thumbnails."""

from __future__ import annotations

import base64
import html

import pyarrow as pa

from . import _rookery
from ._image import is_image_type

MAX_CELL_CHARS = 120
THUMBNAIL_SIDE = 96
MAX_HTML_BYTES = 2_000_000


def _cell_text(value) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        text = f"<{len(value)} bytes>"
    else:
        text = "NULL" if value is None else str(value)
    if len(text) > MAX_CELL_CHARS:
        text = text[: MAX_CELL_CHARS - 1] + "…"
    return html.escape(text)


def _column_cells(column: pa.ChunkedArray) -> list[str]:
    if is_image_type(column.type):
        cells = []
        for chunk in column.chunks:
            thumbnails = pa.array(_rookery.png_thumbnails(chunk, THUMBNAIL_SIDE))
            for png, width, height in zip(thumbnails.to_pylist(), chunk.field("width"), chunk.field("height")):
                if png is None:
                    cells.append("NULL")
                    continue
                title = html.escape(f"{width.as_py()}x{height.as_py()}")
                data = base64.b64encode(png).decode("ascii")
                cells.append(f'<img src="data:image/png;base64,{data}" title="{title}" alt="{title}"/>')
        return cells
    return [_cell_text(value) for value in column.to_pylist()]


def table_html(table: pa.Table, more_rows: bool) -> str:
    columns = [_column_cells(table.column(i)) for i in range(table.num_columns)]
    head = "".join(f"<th>{html.escape(name)}</th>" for name in table.column_names)
    parts = ['<table class="rookery-frame" border="1">', f"<thead><tr>{head}</tr></thead><tbody>"]
    size = sum(len(p) for p in parts)
    shown = 0
    for row in range(table.num_rows):
        cells = "".join(f"<td>{column[row]}</td>" for column in columns)
        line = f"<tr>{cells}</tr>"
        if size + len(line) > MAX_HTML_BYTES:
            more_rows = True
            break
        parts.append(line)
        size += len(line)
        shown += 1
    parts.append("</tbody></table>")
    note = f"{shown} row{'s' if shown != 1 else ''}"
    if more_rows:
        note += " shown; more not shown"
    parts.append(f"<p><small>{note}</small></p>")
    return "".join(parts)
