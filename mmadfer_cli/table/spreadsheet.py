"""Text cells a spreadsheet would run as formulas, made plain text (OWASP's CSV injection advice).

Excel, LibreOffice and Google Sheets treat a cell whose text begins with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return as a formula, quoted in
the CSV or not: a video named ``=HYPERLINK("http://x","y").mp4`` becomes a live
link. Such text gets a leading single quote, which spreadsheets take as "this
is text" and do not show. Text that already begins with a quote gets one too,
so that taking one leading quote off every text cell that has one
(``restore_table``) gives the true text back. Only text columns are touched: a
number, negative or not, stays a number.

The result table stays lossless by default; this is for files meant to be
opened in a spreadsheet (the report's CSVs, ``annotate --csv-for-spreadsheets``).
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_QUOTE = "'"
_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", _QUOTE)
_TRIGGER_PATTERN = "^[=+\\-@\t\r']"


def neutral_text(value: object) -> object:
    """``value`` with a leading quote when it is text a spreadsheet would run; else as it is."""
    if isinstance(value, str) and value.startswith(_TRIGGERS):
        return _QUOTE + value
    return value


def neutral_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells are safe to open in a spreadsheet."""
    out = df.copy()
    for name in out.columns:
        if out[name].dtype == object or pd.api.types.is_string_dtype(out[name]):
            out[name] = out[name].map(neutral_text)
    return out


def _text_columns(table: pa.Table) -> list[int]:
    return [i for i, f in enumerate(table.schema) if pa.types.is_string(f.type)]


def neutral_table(table: pa.Table) -> pa.Table:
    """``table`` with its text cells safe to open in a spreadsheet (its schema kept)."""
    for i in _text_columns(table):
        column = table.column(i)
        risky = pc.match_substring_regex(column, _TRIGGER_PATTERN)
        quoted = pc.binary_join_element_wise(_QUOTE, column, "")
        table = table.set_column(i, table.field(i), pc.if_else(risky, quoted, column))
    return table


def restore_table(table: pa.Table) -> pa.Table:
    """The true text of a table ``neutral_table`` made (one leading quote taken off)."""
    for i in _text_columns(table):
        column = table.column(i)
        quoted = pc.starts_with(column, _QUOTE)
        table = table.set_column(
            i, table.field(i), pc.if_else(quoted, pc.utf8_slice_codeunits(column, 1), column)
        )
    return table
