"""Read a delivery (CSV, JSON Lines, JSON array, Parquet; plain or compressed; one file,
a folder or a glob) into a DuckDB table of VARCHAR columns plus ``_row`` and ``_error``.

Format drift (encoding, BOM, line ends, delimiter, no header, footers, a cut last line)
is sniffed from bounded samples and healed; each coercion is logged as a :class:`ReadNote`.
Parts of one delivery whose headers differ can each be mapped onto the contract first
(``column_map``), so a renamed column in one part lands with its siblings.
"""

from tools.readers.delivery import read_delivery
from tools.readers.result import Delivery, DeliveryPart, ReadNote

__all__ = ["Delivery", "DeliveryPart", "ReadNote", "read_delivery"]
