"""bench/record.py: rows land in the table under their ``## section`` of BENCHMARKS.md."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# the bench scripts import it as `record` (their directory is on sys.path when they run);
# bench/ leaves sys.path again so its script names (ingest, serve, ...) shadow nothing later
BENCH = str(Path(__file__).resolve().parent.parent / "bench")
sys.path.insert(0, BENCH)
try:
    from record import add_block, add_row, machine
finally:
    sys.path.remove(BENCH)

COLUMNS = ["date (UTC)", "machine", "figure"]
DOC = """# Benchmarks

Policy.

## ingest

| date (UTC) | machine | figure |
|---|---|---|
| 2026-01-01 00:00 | m | 1 |

Note under the ingest table.

## serve

| date (UTC) | machine | figure |
|---|---|---|
| 2026-01-02 00:00 | m | 2 |
"""


@pytest.fixture
def doc(tmp_path: Path) -> Path:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(DOC)
    return path


def section_of(text: str, name: str) -> str:
    """The text of ``## name`` up to the next ``## `` heading."""
    start = text.index(f"## {name}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def section(path: Path, name: str) -> str:
    return section_of(path.read_text(), name)


def test_appends_under_the_right_section(doc: Path) -> None:
    add_row("ingest", COLUMNS, ["2026-01-03 00:00", "m", "3"], path=doc)
    assert section(doc, "ingest") == (
        "## ingest\n\n"
        "| date (UTC) | machine | figure |\n"
        "|---|---|---|\n"
        "| 2026-01-01 00:00 | m | 1 |\n"
        "| 2026-01-03 00:00 | m | 3 |\n\n"
        "Note under the ingest table.\n"
    )
    assert section(doc, "serve") == section_of(DOC, "serve")


def test_does_not_touch_other_sections(doc: Path) -> None:
    add_row("serve", COLUMNS, ["2026-01-03 00:00", "m", "3"], path=doc)
    text = doc.read_text()
    before, after = DOC.split("## serve\n")
    assert text.startswith(before)
    assert text == before + "## serve\n" + after + "| 2026-01-03 00:00 | m | 3 |\n"


def test_creates_a_missing_section_at_the_end(doc: Path) -> None:
    add_row("train_speed", COLUMNS, ["2026-01-03 00:00", "m", "3"], path=doc)
    assert doc.read_text() == DOC + (
        "\n## train_speed\n\n"
        "| date (UTC) | machine | figure |\n"
        "|---|---|---|\n"
        "| 2026-01-03 00:00 | m | 3 |\n"
    )


def test_creates_the_file(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    add_row("serve", COLUMNS, ["d", "m", "1"], path=path)
    assert path.read_text() == (
        "## serve\n\n| date (UTC) | machine | figure |\n|---|---|---|\n| d | m | 1 |\n"
    )


def test_two_rows_keep_the_table_contiguous(doc: Path) -> None:
    add_row("ingest", COLUMNS, ["2026-01-03 00:00", "m", "3"], path=doc)
    add_row("ingest", COLUMNS, ["2026-01-04 00:00", "m", "4"], path=doc)
    lines = section(doc, "ingest").splitlines()
    table = [line for line in lines if line.startswith("|")]
    first = lines.index(table[0])
    assert lines[first : first + len(table)] == table  # no gap inside the table
    assert table[2:] == [
        "| 2026-01-01 00:00 | m | 1 |",
        "| 2026-01-03 00:00 | m | 3 |",
        "| 2026-01-04 00:00 | m | 4 |",
    ]


def test_a_differing_header_starts_a_new_table(doc: Path) -> None:
    columns = [*COLUMNS, "bars"]
    add_row("ingest", columns, ["2026-01-03 00:00", "m", "3", "met"], path=doc)
    add_row("ingest", columns, ["2026-01-04 00:00", "m", "4", "met"], path=doc)
    assert section(doc, "ingest") == (
        "## ingest\n\n"
        "| date (UTC) | machine | figure |\n"
        "|---|---|---|\n"
        "| 2026-01-01 00:00 | m | 1 |\n\n"
        "Note under the ingest table.\n\n"
        "| date (UTC) | machine | figure | bars |\n"
        "|---|---|---|---|\n"
        "| 2026-01-03 00:00 | m | 3 | met |\n"
        "| 2026-01-04 00:00 | m | 4 | met |\n"
    )
    assert section(doc, "serve") == section_of(DOC, "serve")


def test_header_only_table_gets_its_first_row(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("## serve\n\nNote.\n\n| date (UTC) | machine | figure |\n|---|---|---|\n")
    add_row("serve", COLUMNS, ["d", "m", "1"], path=path)
    assert path.read_text().endswith("|---|---|---|\n| d | m | 1 |\n")


def test_cells_are_escaped_and_counted(doc: Path) -> None:
    add_row("serve", COLUMNS, ["d", "a | b", "x\ny"], path=doc)
    assert doc.read_text().endswith("| d | a \\| b | x y |\n")
    with pytest.raises(ValueError):
        add_row("serve", COLUMNS, ["d", "m"], path=doc)


def test_add_block_appends_a_dated_block_to_its_section(doc: Path) -> None:
    with_quality = DOC.replace("## serve", "## quality\n\n### old\n\nold text\n\n## serve")
    doc.write_text(with_quality)
    add_block("quality", "Intro.\n\n| a |\n|---|\n| 1 |\n", title="2026-01-03 00:00 UTC", path=doc)
    assert section(doc, "quality") == (
        "## quality\n\n### old\n\nold text\n\n"
        "### 2026-01-03 00:00 UTC\n\nIntro.\n\n| a |\n|---|\n| 1 |\n"
    )
    assert section(doc, "serve") == section_of(DOC, "serve")


def test_machine() -> None:
    assert " cores, Python 3." in machine()
