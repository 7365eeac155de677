"""Read a delivery (CSV, JSON Lines, JSON array, Parquet; plain or compressed; one file,
a folder or a glob) into a DuckDB table of VARCHAR columns plus ``_row`` and ``_error``.

Format drift (encoding, BOM, line ends, delimiter, no header, footers, a cut last line)
is sniffed from bounded samples and healed; each coercion is logged as a :class:`ReadNote`.
"""

from tools.readers.delivery import read_delivery
from tools.readers.result import Delivery, ReadNote

__all__ = ["Delivery", "ReadNote", "read_delivery"]
