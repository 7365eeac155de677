"""Byte-level sniffing of one delivery file: compression, container, text encoding.

Only bounded samples (64 KiB at the head and at the tail) are read here. When DuckDB
cannot read a file as it is (compressed, or text that is not UTF-8), :func:`stage_utf8`
streams it once, 8 MiB at a time, into a plain UTF-8 temp file that DuckDB then reads
in parallel. Memory stays constant whatever the file size.
"""

from __future__ import annotations

import bz2
import codecs
import lzma
import os
import re
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import duckdb

from tools.verdict import InputError

__all__ = [
    "CHUNK",
    "NOT_TABULAR",
    "SAMPLE",
    "Probe",
    "decoder",
    "probe",
    "read_text_head",
    "read_text_tail",
    "stage",
    "work_dir",
]

SAMPLE = 64 * 1024
CHUNK = 8 * 1024 * 1024

_COMPRESSION = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
)
_BINARY = (
    (b"PK\x03\x04", "a ZIP archive, e.g. an Excel .xlsx"),
    (b"\xd0\xcf\x11\xe0", "an old Office file, e.g. an Excel .xls"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x7fELF", "an executable"),
    (b"ARROW1", "an Arrow IPC file"),
    (b"Obj\x01", "an Avro file"),
    (b"SQLite format 3\x00", "a SQLite database"),
)
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x19\x1b-\x1f\x7f]")
NOT_TABULAR = "not CSV, JSON Lines, JSON or Parquet"


def _latin1_fallback(err: UnicodeError) -> tuple[str, int]:
    # cp1252 leaves five bytes undefined; read them as latin-1 (what browsers do).
    assert isinstance(err, UnicodeDecodeError)
    return err.object[err.start : err.end].decode("latin-1"), err.end


def _cp1252_fallback(err: UnicodeError) -> tuple[str, int]:
    # A mostly-UTF-8 file with a few stray single-byte characters (concatenated exports).
    assert isinstance(err, UnicodeDecodeError)
    return err.object[err.start : err.end].decode("cp1252", "heal-latin1"), err.end


codecs.register_error("heal-latin1", _latin1_fallback)
codecs.register_error("heal-cp1252", _cp1252_fallback)


@dataclass(frozen=True)
class Probe:
    """What the first bytes of a file say about it."""

    compression: str | None  # gzip | zstd | bz2 | xz | None
    container: str  # "parquet" or "text"
    codec: str  # how to decode text: utf-8, utf-8-sig, utf-16, cp1252, latin-1, utf-8+cp1252, ...
    stream_cut: bool  # the compressed stream ended early (a cut download)


def _compression(head: bytes) -> str | None:
    for magic, name in _COMPRESSION:
        if head.startswith(magic):
            return name
    if head.startswith(b"BZh") and head[4:10] == b"1AY&SY":
        return "bz2"
    return None


class _Inflater:
    """Decompress a file in bounded steps; a cut stream ends quietly with ``cut`` set.

    Multi-member gzip and multi-frame zstd/bz2/xz streams read as one.
    """

    _INPUT = 256 * 1024

    def __init__(self, path: Path, compression: str) -> None:
        self._raw = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._kind = compression
        self._d = self._new()
        self._pending = b""
        self._fed = False  # the current member has received input
        self._done = False
        self._produced = False
        self.cut = False

    def _new(self):  # zlib, bz2, lzma and zstd decompressor objects share no base type
        if self._kind == "gzip":
            return zlib.decompressobj(wbits=31)
        if self._kind == "bz2":
            return bz2.BZ2Decompressor()
        if self._kind == "xz":
            return lzma.LZMADecompressor()
        import zstandard  # deferred: only zstd deliveries need it

        return zstandard.ZstdDecompressor().decompressobj()

    def _step(self, want: int) -> bytes:
        d = self._d
        if self._kind == "gzip":
            out = d.decompress(self._pending, want)
            self._pending = d.unconsumed_tail
        elif self._kind == "zstd":
            out, self._pending = d.decompress(self._pending), b""
        else:
            feed, self._pending = (self._pending, b"") if d.needs_input else (b"", self._pending)
            out = d.decompress(feed, want)
        if d.eof:  # end of one member/frame: another may follow
            rest = d.unused_data + self._pending
            self._d, self._pending, self._fed = self._new(), rest.lstrip(b"\x00"), False
        return out

    def read(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size and not self._done:
            if not self._pending:
                # zstd's decompressobj has no output bound: feed it small steps
                self._pending = self._raw.read(self._INPUT // 8 if self._kind == "zstd" else self._INPUT)
                if not self._pending:
                    self._done = True
                    self.cut = self._fed
                    break
            self._fed = True
            try:
                out += self._step(size - len(out))
            except (zlib.error, OSError, EOFError, lzma.LZMAError, *_zstd_errors()) as err:
                if not out and not self._produced:
                    raise InputError(f"cannot decompress ({self._kind}): {err}") from None
                self._done = self.cut = True
            self._produced = self._produced or bool(out)
        return bytes(out)

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> _Inflater:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _zstd_errors() -> tuple[type[BaseException], ...]:
    try:
        import zstandard
    except ImportError:  # pragma: no cover - zstandard is a dependency
        return ()
    return (zstandard.ZstdError,)


def _open(path: Path, compression: str | None) -> _Inflater | BinaryIO:
    return _Inflater(path, compression) if compression else open(path, "rb")  # noqa: SIM115


def _read_some(stream: _Inflater | BinaryIO, size: int) -> tuple[bytes, bool]:
    """Up to ``size`` bytes, and whether the compressed stream turned out to be cut off."""
    buf = bytearray()
    while len(buf) < size:
        chunk = stream.read(size - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf), bool(getattr(stream, "cut", False))


def _codec(head: bytes, complete: bool) -> str:
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    if len(head) >= 4:
        even, odd = head[0::2], head[1::2]
        if odd.count(0) > 0.3 * len(odd) and even.count(0) < 0.05 * len(even):
            return "utf-16-le"
        if even.count(0) > 0.3 * len(even) and odd.count(0) < 0.05 * len(odd):
            return "utf-16-be"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    mixed = any(ord(c) > 0x7F and c != "\ufffd" for c in head.decode("utf-8", "replace"))
    if mixed:
        return "utf-8+cp1252"
    return "cp1252" if re.search(rb"[\x80-\x9f]", head) else "latin-1"


def decoder(codec: str) -> codecs.IncrementalDecoder:
    """An incremental decoder for ``codec`` (including our two fallback codecs)."""
    if codec in ("cp1252", "latin-1"):
        return codecs.getincrementaldecoder("cp1252")("heal-latin1")
    if codec == "utf-8+cp1252":
        return codecs.getincrementaldecoder("utf-8")("heal-cp1252")
    return codecs.getincrementaldecoder(codec)("strict")


def _looks_binary(head: bytes, codec: str, complete: bool) -> bool:
    try:
        text = decoder(codec).decode(head, final=complete)
    except UnicodeDecodeError:
        return True
    return len(_CONTROL.findall(text)) > max(2, len(text) // 100)


def probe(path: Path) -> Probe:
    """Sniff ``path`` from its first 64 KiB (decompressed). Raise InputError if unusable."""
    try:
        with open(path, "rb") as raw:
            first = raw.read(SAMPLE + 1)
        compression = _compression(first)
        if compression:
            with _open(path, compression) as stream:
                head, cut = _read_some(stream, SAMPLE + 1)
        else:
            head, cut = first, False
    except OSError as err:
        raise InputError(f"cannot open: {err.strerror or err}") from None
    if not head:
        raise InputError(f"file is empty (0 bytes after {compression} decompression)")
    if head.startswith(b"PAR1"):
        return Probe(compression, "parquet", "binary", cut)
    for magic, what in _BINARY:
        if head.startswith(magic):
            raise InputError(f"{NOT_TABULAR}: looks binary ({what})")
    complete = len(head) <= SAMPLE
    head = head[:SAMPLE]
    codec = _codec(head, complete)
    if _looks_binary(head, codec, complete):
        raise InputError(f"{NOT_TABULAR}: looks binary")
    return Probe(compression, "text", codec, cut)


def stage(path: Path, *, compression: str | None, codec: str, directory: Path) -> tuple[Path, bool]:
    """Stream ``path`` into a temp file: decompressed and, for text, transcoded to UTF-8.

    Returns the temp file (the caller deletes it) and whether the compressed stream was
    cut off (the bytes decompressed so far are kept, so a cut last line can be quarantined).
    """
    passthrough = codec in ("binary", "utf-8", "utf-8-sig")
    fd, name = tempfile.mkstemp(prefix="heal-delivery-", suffix=".staged", dir=directory)
    staged = Path(name)
    cut = False
    try:
        with os.fdopen(fd, "wb") as out, _open(path, compression) as src:
            dec = None if passthrough else decoder(codec)
            while True:
                chunk, cut = _read_some(src, CHUNK)
                if not chunk:
                    break
                out.write(dec.decode(chunk).encode("utf-8") if dec else chunk)
                if cut:
                    break
            if dec:
                try:
                    out.write(dec.decode(b"", final=True).encode("utf-8"))
                except UnicodeDecodeError:
                    if not cut:  # a cut stream may end mid-character; that is the cut line's business
                        raise
    except UnicodeDecodeError as err:
        staged.unlink(missing_ok=True)
        raise InputError(f"cannot decode as {codec}: {err.reason} at byte {err.start}") from None
    except (OSError, InputError) as err:
        staged.unlink(missing_ok=True)
        raise InputError(f"cannot decompress or stage: {err}") from None
    return staged, cut


def read_text_head(path: Path) -> tuple[str, bool]:
    """The first 64 KiB of a UTF-8 file as text (BOM removed) and whether that is all of it."""
    with open(path, "rb") as f:
        data = f.read(SAMPLE + 1)
    complete = len(data) <= SAMPLE
    text = codecs.getincrementaldecoder("utf-8")("replace").decode(data[:SAMPLE], final=complete)
    return text.removeprefix("\ufeff"), complete


def read_text_tail(path: Path) -> tuple[str, bool]:
    """The last 64 KiB of a UTF-8 file as text, and whether those bytes are valid UTF-8."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - SAMPLE))
        data = f.read(SAMPLE)
    if size > SAMPLE:
        data = data.lstrip(bytes(range(0x80, 0xC0)))  # start on a character boundary
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace"), False


def work_dir(con: duckdb.DuckDBPyConnection) -> Path:
    """Where staged files go: DuckDB's temp directory, else next to the database file."""
    setting = con.execute("SELECT current_setting('temp_directory')").fetchone()
    if setting and setting[0] and Path(setting[0]).is_dir():
        return Path(setting[0])
    row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    if row and row[0]:
        return Path(row[0]).resolve().parent
    return Path(tempfile.gettempdir())
