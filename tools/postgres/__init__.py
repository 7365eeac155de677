"""The PostgreSQL target: rows staged in DuckDB, streamed in with COPY, committed in one transaction.

:mod:`tools.postgres.sink` holds :class:`PostgresSink` (connection, transactions, load, upsert,
key conflicts); :mod:`tools.postgres.stream` the COPY of staged rows through an OS pipe;
:mod:`tools.postgres.sql` what is PostgreSQL's own: placeholders, types, names, catalog facts.
"""

from tools.postgres.sink import PostgresSink
from tools.postgres.sql import pg_type, to_pyformat, unique_index_covers

__all__ = ["PostgresSink", "pg_type", "to_pyformat", "unique_index_covers"]
