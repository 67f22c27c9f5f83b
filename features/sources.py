"""Read shop exports (CSV or Parquet, one file or a folder of them) as raw string frames.

Every column is read as a *string* exactly as the file holds it, so a row the validator
rejects keeps its original content in the quarantine. A column mapping (raw name ->
canonical name) makes any export fit the canonical event columns of ``features.schema``.

CSV goes through polars' multithreaded reader (Arrow memory, no per-row Python); Parquet
through polars' Parquet reader. A folder is read file by file and concatenated, with columns
aligned by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import polars as pl

Format = Literal["csv", "parquet"]

CSV_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".txt", ".dat", ".data", ".csv.gz")
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")


class SourceError(ValueError):
    """A source cannot be read as asked (missing file, unknown format, missing column)."""


def detect_format(path: Path) -> Format:
    """The format of one file from its name: ``csv`` or ``parquet``."""
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES) or name in {"u.data"}:
        return "csv"
    raise SourceError(
        f"cannot tell the format of {path}: expected one of "
        f"{', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)} (or pass fmt='csv'|'parquet')"
    )


def list_files(path: str | Path, fmt: Format | None = None) -> list[Path]:
    """The data files at ``path``: the file itself, or the sorted files of a folder."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"no such file or folder: {path}")
    if path.is_file():
        return [path]
    files = []
    for child in sorted(path.iterdir()):
        if not child.is_file() or child.name.startswith((".", "_")):
            continue
        try:
            child_fmt = detect_format(child)
        except SourceError:
            continue
        if fmt is None or child_fmt == fmt:
            files.append(child)
    if not files:
        raise SourceError(f"folder {path} holds no CSV or Parquet files")
    return files


def _clean_name(name: str) -> str:
    """Header names as exports write them: drop a UTF-8 byte-order mark and outer spaces."""
    return name.lstrip("\ufeff").strip()


def _read_csv_file(
    path: Path,
    *,
    separator: str,
    has_header: bool,
    new_columns: Sequence[str] | None,
    quote_char: str | None,
    encoding: str,
    columns: Sequence[str] | None,
) -> pl.DataFrame:
    try:
        frame = pl.read_csv(
            path,
            infer_schema=False,
            separator=separator,
            has_header=has_header,
            new_columns=list(new_columns) if new_columns else None,
            quote_char=quote_char,
            encoding=encoding,  # type: ignore[arg-type]
            columns=list(columns) if columns else None,
        )
    except pl.exceptions.NoDataError:
        raise SourceError(f"{path} is empty (not even a header line)") from None
    except pl.exceptions.ComputeError as error:
        if "more fields" not in str(error):
            raise SourceError(f"cannot read {path} as CSV: {error}") from None
        line = _first_ragged_line(path, separator, quote_char)
        raise SourceError(
            f"{path}: line {line} has more fields than the header; fix or remove it "
            "(no row is dropped silently)"
        ) from None
    return frame.rename({c: _clean_name(c) for c in frame.columns if _clean_name(c) != c})


def _first_ragged_line(path: Path, separator: str, quote_char: str | None) -> int | None:
    """The 1-based number of the first line with more fields than the first (error path)."""
    import csv

    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(
            handle,
            delimiter=separator,
            quotechar=quote_char or '"',
            quoting=csv.QUOTE_MINIMAL if quote_char else csv.QUOTE_NONE,
        )
        width = None
        for row in reader:
            if width is None:
                width = len(row)
            elif len(row) > width:
                return reader.line_num
    return None


def _read_parquet_file(path: Path, columns: Sequence[str] | None) -> pl.DataFrame:
    frame = pl.read_parquet(path, columns=list(columns) if columns else None)
    return frame.cast(pl.String)


def apply_mapping(frame: pl.DataFrame, mapping: Mapping[str, str] | None) -> pl.DataFrame:
    """Rename raw columns to canonical names (``{raw: canonical}``); unmapped columns stay."""
    if not mapping:
        return frame
    missing = [raw for raw in mapping if raw not in frame.columns]
    if missing:
        raise SourceError(
            f"mapping names column(s) {missing} that the source does not have; "
            f"its columns are {frame.columns}"
        )
    targets = list(mapping.values())
    if len(set(targets)) != len(targets):
        raise SourceError(f"mapping sends two columns to the same name: {dict(mapping)}")
    clashes = [
        target for raw, target in mapping.items() if target in frame.columns and target != raw
    ]
    # A column already named like a mapping target is replaced by the mapped one.
    clashes = [c for c in clashes if c not in mapping]
    if clashes:
        frame = frame.drop(clashes)
    return frame.rename(dict(mapping))


def read_raw(
    path: str | Path,
    *,
    fmt: Format | None = None,
    mapping: Mapping[str, str] | None = None,
    separator: str = ",",
    has_header: bool = True,
    new_columns: Sequence[str] | None = None,
    quote_char: str | None = '"',
    encoding: str = "utf8",
    columns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Read a CSV/Parquet file or a folder of them; every column a string.

    ``mapping`` renames raw columns to canonical ones (``{"visitorid": "customer_id"}``);
    ``columns`` limits reading to those raw columns. Empty CSV fields read as null.
    """
    files = list_files(path, fmt)
    frames = []
    for file in files:
        file_fmt = fmt or detect_format(file)
        if file_fmt == "parquet":
            frames.append(_read_parquet_file(file, columns))
        else:
            frames.append(
                _read_csv_file(
                    file,
                    separator=separator,
                    has_header=has_header,
                    new_columns=new_columns,
                    quote_char=quote_char,
                    encoding=encoding,
                    columns=columns,
                )
            )
    frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal")
    return apply_mapping(frame, mapping)


def parse_pairs(pairs: Sequence[str], flag: str, shape: str) -> dict[str, str]:
    """``["a=b", ...]`` (repeatable CLI flags) -> ``{"a": "b"}``; the value may hold ``=``."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise SourceError(f"{flag} {pair!r} is not of the form {shape}")
        parsed[key.strip()] = value.strip()
    return parsed


def parse_mapping(pairs: Sequence[str]) -> dict[str, str]:
    """``["visitorid=customer_id", ...]`` (CLI form) -> ``{"visitorid": "customer_id"}``."""
    return parse_pairs(pairs, "mapping", "raw_column=canonical_column")
