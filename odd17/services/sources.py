"""Records from a file, each judged alone (no rules, no database).

Used by intake (documents), ``reviewers import`` and payment batches. Whatever a record holds,
reading it yields either its parsed data or one French message naming it: one bad byte, one
absurdly nested or huge record never costs the others of its file.

- JSON Lines are split on ``\\n`` only (not on U+2028/U+2029/U+0085, which may sit inside
  strings) and each line is decoded alone, so one non-UTF-8 byte costs only its line.
- A UTF-8 byte-order mark (Excel's "CSV UTF-8", Windows editors) is dropped; CRLF is accepted;
  a UTF-16 file (Excel's "Unicode text") is decoded as such.
- CSV: the delimiter is taken among ``,`` ``;`` and tab from the header line (French Excel
  writes ``;``). A CSV in a legacy encoding (Latin-1/cp1252 from old Excel) is refused as a whole
  with what to do, rather than guessed.
- JSON is parsed only after bounding the record's size, nesting depth and number-literal length
  on the raw text: ``json.loads`` would otherwise raise ``RecursionError`` or hit Python's
  int-conversion limit, and a lone UTF-16 surrogate would only fail at the database.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any, BinaryIO

MAX_RECORD_BYTES = 1_000_000  # a full application (50 partners, 4,000-char summary) is ~60 kB
MAX_DEPTH = 32                # the application format nests 3 levels
MAX_NUMBER_CHARS = 100        # amounts have at most 15 characters

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_LONG_NUMBER = re.compile(rf"[-+0-9.eE]{{{MAX_NUMBER_CHARS + 1},}}")
_NUMBER_CHARS = frozenset("-+0123456789.eE")  # _LONG_NUMBER's class
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CSV_DELIMITERS = (",", ";", "\t")


class SourceError(Exception):
    """A whole file cannot be read (missing, unreadable, legacy encoding): French message."""


@dataclass(slots=True)
class Record:
    """One record as read: its source (``path:line``), and its data or why it is refused."""

    source: str
    data: Any = None
    error: str | None = None


def _msg(language: str, fr: str, en: str) -> str:
    return fr if language == "fr" else en


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path} : lecture impossible ({exc.strerror})") from exc


def _is_utf16(data: bytes) -> bool:
    return data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))


def _strip_bom(data: bytes) -> bytes:
    return data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data


def _decode_error(exc: UnicodeDecodeError, language: str, line: bool = False) -> str:
    byte = exc.object[exc.start:exc.start + 1].hex().upper()
    what = _msg(language, "ligne non encodée" if line else "fichier non encodé",
                "line is not" if line else "file is not")
    return _msg(language,
                f"{what} en UTF-8 (octet 0x{byte}, colonne {exc.start + 1}) : enregistrez le "
                "fichier en UTF-8",
                f"{what} UTF-8 (byte 0x{byte}, column {exc.start + 1}): save the file as UTF-8")


# --- bounded JSON --------------------------------------------------------------------------

def _bounds_error(text: str, size: int, language: str) -> str | None:
    """Why ``text`` must not reach ``json.loads``, checked on the raw text (strings masked)."""
    if size > MAX_RECORD_BYTES:
        return _msg(language, f"enregistrement trop volumineux ({size} octets ; au plus "
                              f"{MAX_RECORD_BYTES})",
                    f"record too large ({size} bytes; at most {MAX_RECORD_BYTES})")
    cheap = text.count("[") + text.count("{") <= MAX_DEPTH
    if cheap and not _has_long_number(text):
        return None
    bare = _STRING.sub('""', text)  # brackets and digits inside strings do not count
    if not cheap:
        steps = (1 if c in "[{" else -1 for c in _BRACKET.findall(bare))
        if max(accumulate(steps, initial=0)) > MAX_DEPTH:
            return _msg(language, f"imbrication trop profonde (au plus {MAX_DEPTH} niveaux)",
                        f"nesting too deep (at most {MAX_DEPTH} levels)")
    if _has_long_number(bare):
        return _msg(language, f"nombre trop long (au plus {MAX_NUMBER_CHARS} caractères)",
                    f"number too long (at most {MAX_NUMBER_CHARS} characters)")
    return None


def _has_long_number(text: str) -> bool:
    """``_LONG_NUMBER.search(text)``, probing every n-th character (n = MAX_NUMBER_CHARS + 1):
    a run of n characters covers one of the probes, so only the windows around probes that
    fall on a number's character are searched. Scanning every line whole (French text: every
    ``e`` starts an attempt) made ``parse_json`` ~15 µs an application; probing, ~11 µs."""
    n = MAX_NUMBER_CHARS + 1
    for probe in range(n - 1, len(text), n):
        if text[probe] in _NUMBER_CHARS and _LONG_NUMBER.search(text, probe - n + 1, probe + n):
            return True
    return False


def _bad_string(value: Any, controls: bool) -> str | None:
    """The first string (key or value) that cannot be stored: a lone surrogate, or when
    ``controls`` a control character (PostgreSQL refuses NUL in text)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "surrogate"
            if controls and CONTROL.search(item):
                return "control"
    return None


def _string_error(kind: str, language: str) -> str:
    if kind == "surrogate":
        return _msg(language, "caractère Unicode invalide (demi-paire de substitution \\uD800 à "
                              "\\uDFFF isolée)",
                    "invalid Unicode character (lone surrogate \\uD800 to \\uDFFF)")
    return _msg(language, "caractère de contrôle interdit (par exemple NUL)",
                "control characters (such as NUL) are not allowed")


def parse_json(source: str, text: str, *, language: str = "fr", controls: bool = False,
               size: int | None = None) -> Record:
    """One JSON record, bounded before parsing; never raises."""
    error = _bounds_error(text, len(text.encode("utf-8", "surrogatepass"))
                          if size is None else size, language)
    if error is not None:
        return Record(source, error=error)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return Record(source, error=_msg(
            language,
            f"JSON illisible ligne {exc.lineno}, colonne {exc.colno} : {exc.msg}",
            f"unreadable JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
        ))
    except (RecursionError, ValueError) as exc:  # bounds above make these unreachable
        return Record(source, error=_msg(language, f"JSON illisible : {exc}",
                                         f"unreadable JSON: {exc}"))
    if controls or _SURROGATE_ESCAPE.search(text):
        kind = _bad_string(data, controls)
        if kind is not None:
            return Record(source, error=_string_error(kind, language))
    return Record(source, data=data)


def json_document(path: Path, data: bytes, language: str = "fr",
                  controls: bool = False) -> Record:
    """A ``.json`` file holding one record."""
    source = str(path)
    try:
        text = data.decode("utf-16") if _is_utf16(data) else _strip_bom(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        return Record(source, error=_decode_error(exc, language))
    return parse_json(source, text, language=language, controls=controls, size=len(data))


def json_lines(path: Path, data: bytes, language: str = "fr",
               controls: bool = False) -> list[Record]:
    """A ``.jsonl`` file: one record per ``\\n``-separated line, each decoded alone."""
    return list(iter_json_lines(path, io.BytesIO(data), language, controls))


def iter_json_lines(path: Path, stream: BinaryIO, language: str = "fr",
                    controls: bool = False) -> Iterator[Record]:
    """The records of a ``.jsonl`` stream as they are read: memory bounded by the longest
    line, not by the file."""
    utf16 = _is_utf16(stream.read(2))
    stream.seek(0)
    if utf16:
        text = io.TextIOWrapper(stream, encoding="utf-16", errors="replace", newline="\n")
        lines: Iterator[bytes] = (line.encode("utf-8") for line in text)
    else:
        lines = iter(stream)  # binary lines end at b"\n" only
    for lineno, raw in enumerate(lines, start=1):
        # A BOM may start any line of files joined with cat, not only the first.
        line = _strip_bom(raw.removesuffix(b"\n").removesuffix(b"\r"))
        if not line.strip():
            continue
        yield _line_record(f"{path}:{lineno}", line, language, controls)


def _line_record(source: str, line: bytes, language: str, controls: bool) -> Record:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Record(source, error=_decode_error(exc, language, line=True))
    return parse_json(source, text, language=language, controls=controls, size=len(line))


def _array_items(text: str) -> Iterator[tuple[int, str]] | None:
    """(line, text) of each element of a top-level JSON array, split on the raw text so that
    each element is parsed (and bounded) alone; None when ``text`` is not an array."""
    start = len(text) - len(text.lstrip())
    if not text.startswith("[", start):
        return None
    tokens = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]', re.DOTALL)
    depth, begin, items = 0, start + 1, []
    for match in tokens.finditer(text, start):
        token = match.group()
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
            if depth == 0:
                items.append((begin, match.start()))
                if text[match.end():].strip():
                    return None
                break
        elif token == "," and depth == 1:
            items.append((begin, match.start()))
            begin = match.end()
    else:
        return None
    if len(items) == 1 and not text[items[0][0]:items[0][1]].strip():
        items = []  # "[]"
    return ((text.count("\n", 0, b) + 1, text[b:e]) for b, e in items)


def json_array(path: Path, data: bytes, language: str = "fr",
               controls: bool = True) -> list[Record]:
    """A ``.json`` file holding a list of records; raises SourceError if it is not a list."""
    try:
        text = data.decode("utf-16") if _is_utf16(data) else _strip_bom(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path} : {_decode_error(exc, language)}") from exc
    items = _array_items(text)
    if items is None:
        record = parse_json(str(path), text, language=language)
        if record.error is not None:
            raise SourceError(f"{path} : {record.error}")
        raise SourceError(f"{path} : une liste JSON est attendue")
    return [parse_json(f"{path}[{i}] (ligne {line})", item, language=language,
                       controls=controls) for i, (line, item) in enumerate(items)]


# --- CSV -----------------------------------------------------------------------------------

def _csv_text(path: Path, data: bytes) -> tuple[str, set[int]]:
    """The file's text and the physical lines (1-based) that are not UTF-8. A file where no
    non-ASCII line is UTF-8 is in a legacy encoding: refused whole, with what to do."""
    if _is_utf16(data):
        return data.decode("utf-16"), set()
    data = _strip_bom(data)
    try:
        return data.decode("utf-8"), set()
    except UnicodeDecodeError:
        pass
    lines, bad, good_non_ascii = [], set(), False
    for lineno, line in enumerate(data.split(b"\n"), start=1):
        try:
            text = line.decode("utf-8")
            good_non_ascii |= not line.isascii()
        except UnicodeDecodeError:
            bad.add(lineno)
            text = line.decode("utf-8", "replace")
        lines.append(text)
    if not good_non_ascii:
        first = min(bad)
        raise SourceError(
            f"{path} : fichier non encodé en UTF-8 (ligne {first} ; sans doute Latin-1/Windows-"
            "1252, l'ancien format d'Excel) : dans Excel, « Enregistrer sous » > « CSV UTF-8 "
            "(délimité par des virgules) », puis relancez l'import")
    return "\n".join(lines), bad


def _delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in _CSV_DELIMITERS}
    best = max(_CSV_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def csv_records(path: Path, data: bytes, language: str = "fr") -> list[Record]:
    """CSV with a header line: one record (a dict of the header's columns) per row, its source
    ``path:line`` (the row's first physical line). Rows holding control characters, bytes that
    are not UTF-8, or more cells than the header are refused one by one."""
    text, bad_lines = _csv_text(path, data)
    stream = text.split("\n")  # not splitlines(): U+2028 and the like may sit in a cell
    reader = csv.reader((line + "\n" for line in stream),
                        delimiter=_delimiter(stream[0] if stream else ""))
    try:
        header = [h.strip() for h in next(reader)]
    except (StopIteration, csv.Error):
        return []
    records: list[Record] = []
    first = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            records.append(Record(f"{path}:{first}", error=f"ligne CSV illisible : {exc}"))
            first = reader.line_num + 1
            continue
        source, span = f"{path}:{first}", range(first, reader.line_num + 1)
        first = reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if bad_lines.intersection(span):
            records.append(Record(source, error=_msg(
                language, "octets non UTF-8 : enregistrez le fichier en UTF-8",
                "bytes that are not UTF-8: save the file as UTF-8")))
        elif len(row) > len(header):
            records.append(Record(source, error=_msg(
                language, f"{len(row)} colonnes pour {len(header)} en-têtes",
                f"{len(row)} cells for {len(header)} headers")))
        elif any(CONTROL.search(cell) for cell in row):
            records.append(Record(source, error=_string_error("control", language)))
        else:
            records.append(Record(source, data=dict(zip(header, row, strict=False))))
    return records
