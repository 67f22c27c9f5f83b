"""The one writer of BENCHMARKS.md: rows appended to the table under a ``## <section>`` heading.

The bench scripts run as ``python bench/<name>.py``, so this directory is on ``sys.path`` and
they import it as ``record``. A section's table is the last markdown table under its heading;
a row whose columns differ from that table's header starts a new table instead.
"""

from __future__ import annotations

import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
_PIPE = re.compile(r"(?<!\\)\|")


def machine() -> str:
    """Where the benchmark ran, e.g. ``x86_64, 2 cores, Python 3.11.7``."""
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def now() -> str:
    """The current time in UTC, as the ``date (UTC)`` cells show it: ``2026-11-24 14:53``."""
    return f"{datetime.now(UTC):%Y-%m-%d %H:%M}"


def add_row(section: str, columns: list[str], cells: list[str], path: Path = BENCHMARKS) -> None:
    """Append one row to the table under ``## section`` (created at the end when missing)."""
    if len(cells) != len(columns):
        raise ValueError(f"{len(cells)} cells for {len(columns)} columns")
    lines = _read(path)
    row = _row(cells)
    found = _section(lines, section)
    if found is None:
        _put(lines, len(lines), [f"## {section}", "", *_header(columns), row])
    else:
        start, end = found
        table = _last_table(lines, start + 1, end)
        if table is not None and _cells(lines[table[0]]) == _cells(_row(columns)):
            lines.insert(table[1], row)
        else:
            _put(lines, end, [*_header(columns), row])
    _write(path, lines)


def add_block(section: str, text: str, title: str | None = None, path: Path = BENCHMARKS) -> None:
    """Append ``### title`` (default: now, UTC) and a markdown ``text`` at the end of a section."""
    block = [f"### {title or (now() + ' UTC')}", "", *text.strip("\n").splitlines()]
    lines = _read(path)
    found = _section(lines, section)
    if found is None:
        _put(lines, len(lines), [f"## {section}", "", *block])
    else:
        _put(lines, found[1], block)
    _write(path, lines)


def _read(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines).strip("\n") + "\n")


def _escape(cell: str) -> str:
    return _PIPE.sub(r"\|", " ".join(cell.split()))


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(_escape(c) for c in cells) + " |"


def _header(columns: list[str]) -> list[str]:
    return [_row(columns), "|" + "|".join("---" for _ in columns) + "|"]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in _PIPE.split(line.strip().removeprefix("|").removesuffix("|"))]


def _section(lines: list[str], section: str) -> tuple[int, int] | None:
    """(index of the ``## section`` heading, index after the section's last non-blank line)."""
    heading = f"## {section}"
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        return None
    end = start + 1
    while end < len(lines) and not lines[end].startswith("## "):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    return start, end


def _last_table(lines: list[str], start: int, end: int) -> tuple[int, int] | None:
    """(first line, line after the last) of the last table in ``lines[start:end]``."""
    stop = end
    while stop > start and not lines[stop - 1].startswith("|"):
        stop -= 1
    if stop == start:
        return None
    first = stop
    while first > start and lines[first - 1].startswith("|"):
        first -= 1
    return first, stop


def _put(lines: list[str], at: int, block: list[str]) -> None:
    """Insert ``block`` at ``at`` with one blank line on each side (none at the file's ends)."""
    after = [""] if at < len(lines) and lines[at].strip() else []
    before = [""] if at > 0 and lines[at - 1].strip() else []
    lines[at:at] = [*before, *block, *after]
