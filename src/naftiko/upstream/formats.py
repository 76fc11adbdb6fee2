"""Upstream ``outputRawFormat`` bodies converted to JSON values (reference-semantics §3.7).

Every parser is a maintained library (defusedxml, PyYAML safe loader, csv, BeautifulSoup
with soupsieve, markdown-it-py, fastavro). Errors are :class:`FormatError` with the
parser's reason and a position, never a piece of the body: bodies can hold tokens.

Protobuf is refused at load time: decoding with a ``.proto`` file needs the schema
compiled into descriptors (``protoc`` or an equivalent), which this runtime does not
ship. Failing at load is better than a unit that fails on every call.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import decimal
import io
import json
import uuid
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import yaml

from naftiko import json_codec
from naftiko.errors import UpstreamError

__all__ = ["FORMATS", "FormatError", "check_format", "normalize_format", "parse_body"]


class FormatError(ValueError, UpstreamError):
    """A body or a format declaration that cannot be read; the message is safe to show."""


FORMATS: Final = (
    "json",
    "xml",
    "yaml",
    "csv",
    "tsv",
    "psv",
    "html",
    "markdown",
    "avro",
    "protobuf",
)
# Outside the schema but present in published documents: kept as text / bytes.
_EXTRA_FORMATS: Final = ("text", "binary")
_ALIASES: Final = {"yml": "yaml", "md": "markdown", "htm": "html", "proto": "protobuf"}

MAX_NODES: Final = 1_000_000
"""Values a YAML/Avro document may expand to: YAML aliases can nest into an exponential
"billion laughs" tree that is small on the wire; we refuse it instead of walking it."""

MAX_EXPANDED_BYTES: Final = 10 * 1024 * 1024
"""Characters of text a document may expand to, when the caller gives no limit. Aliases
to one large string pass the node budget (a 1 MB body became a 314 MB reply): every
string, key and scalar counts each time it appears."""


def normalize_format(fmt: str | None) -> str:
    """The canonical lower-case format name (``None`` means json)."""
    if fmt is None:
        return "json"
    name = fmt.strip().lower()
    if not name:
        return "json"
    return _ALIASES.get(name, name)


def _schema_path(schema: str, base_dir: Path | str) -> Path:
    path = Path(schema.removeprefix("file://"))
    return path if path.is_absolute() else Path(base_dir) / path


def check_format(fmt: str | None, schema: str | None = None, base_dir: Path | str = ".") -> None:
    """Validate a format declaration at load time; raises :class:`FormatError` saying
    what to change (unknown name, missing or unreadable schema file, bad CSS selector).
    """
    name = normalize_format(fmt)
    if name not in FORMATS and name not in _EXTRA_FORMATS:
        raise FormatError(f"unsupported outputRawFormat {fmt!r}: use one of {', '.join(FORMATS)}")
    if name == "protobuf":
        raise FormatError(
            "outputRawFormat 'protobuf' is not supported by this runtime: decoding needs the "
            ".proto schema compiled to descriptors (protoc); expose the upstream as json, or "
            "remove outputParameters to pass the body through unchanged"
        )
    if name == "avro":
        if not schema:
            raise FormatError(
                "outputRawFormat 'avro' requires outputSchema: the path of an .avsc file"
            )
        _avro_schema(str(_schema_path(schema, base_dir).resolve()))
    if name == "html" and schema:
        import soupsieve

        try:
            soupsieve.compile(schema)
        except soupsieve.SelectorSyntaxError as exc:
            raise FormatError(
                f"outputSchema {schema!r} is not a valid CSS selector: {exc}"
            ) from None


def parse_body(
    raw: bytes,
    fmt: str | None,
    *,
    schema: str | None = None,
    base_dir: Path | str = ".",
    max_bytes: int = MAX_EXPANDED_BYTES,
) -> Any:
    """Convert an upstream body to a JSON value; raises :class:`FormatError`.

    ``max_bytes`` bounds what the body may expand to (YAML aliases): the engine passes
    its response size limit, so a body's expanded size counts against that limit.
    """
    name = normalize_format(fmt)
    parser = _PARSERS.get(name)
    if parser is None:
        if name == "protobuf":
            check_format(name, schema, base_dir)  # raises with the explanation
        raise FormatError(f"unsupported outputRawFormat {fmt!r}")
    return parser(raw, schema, base_dir, max_bytes)


def _decode(raw: bytes | str, what: str) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{what} body is not UTF-8 (byte {exc.start})") from None


# --------------------------------------------------------------------------- json / yaml


def _parse_json(raw: bytes, _schema: str | None, _base: Path | str, _limit: int) -> Any:
    if not raw.strip():
        return None
    try:
        return json_codec.loads(raw)
    except RecursionError:
        raise FormatError("JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise FormatError(
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except UnicodeDecodeError as exc:
        raise FormatError(f"JSON body is not valid UTF-8 (byte {exc.start})") from None


def _parse_yaml(raw: bytes, _schema: str | None, _base: Path | str, limit: int) -> Any:
    text = _decode(raw, "YAML")
    try:
        return _jsonable(yaml.safe_load(text), _Budget(limit))
    except yaml.MarkedYAMLError as exc:
        # str(exc) quotes the offending line of the body: build our own message.
        mark = exc.problem_mark
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise FormatError(f"invalid YAML: {exc.problem or exc.context}{where}") from None
    except yaml.YAMLError as exc:
        raise FormatError(f"invalid YAML: {type(exc).__name__}") from None


class _Budget:
    """What is left of the node and text budgets while a document is converted."""

    __slots__ = ("limit", "nodes", "size")

    def __init__(self, limit: int = MAX_EXPANDED_BYTES) -> None:
        self.limit = limit
        self.nodes = MAX_NODES
        self.size = limit

    def spend(self, size: int) -> None:
        self.size -= size
        if self.size < 0:
            raise FormatError(f"document expands to more than {self.limit} bytes (aliases?)")


def _jsonable(value: Any, budget: _Budget | None = None) -> Any:
    """YAML/Avro values that JSON cannot hold (dates, bytes, decimals) as JSON values."""
    if budget is None:
        budget = _Budget()
    if isinstance(value, str):
        budget.spend(len(value))
        return value
    if value is None or isinstance(value, (bool, int, float)):
        budget.spend(1)  # a scalar is at least one character of the reply
        return value
    budget.nodes -= 1
    budget.spend(1)
    if budget.nodes < 0:
        raise FormatError(f"document expands to more than {MAX_NODES} values (aliases?)")
    if isinstance(value, dict):
        return {_key(key, budget): _jsonable(item, budget) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(item, budget) for item in value]
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def _key(key: Any, budget: _Budget) -> str:
    text = key if isinstance(key, str) else str(key)
    budget.spend(len(text))
    return text


# --------------------------------------------------------------------------- xml


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if tag.startswith("{") else tag


def _xml_element(element: Any) -> Any:
    """Jackson ``XmlMapper.readTree`` shape: attributes and children as fields, repeated
    children as arrays, every scalar a string, text next to fields under ``""``.
    """
    children = list(element)
    text = (element.text or "").strip()
    if not children and not element.attrib:
        return element.text or ""
    node: dict[str, Any] = {_local(key): value for key, value in element.attrib.items()}
    for child in children:
        if not isinstance(child.tag, str):
            continue  # comments, processing instructions
        key = _local(child.tag)
        value = _xml_element(child)
        if key not in node:
            node[key] = value
        elif isinstance(node[key], list):  # elements never convert to lists: a repetition
            node[key].append(value)
        else:
            node[key] = [node[key], value]
        tail = (child.tail or "").strip()
        if tail:
            text = f"{text}{tail}" if text else tail
    if text:
        node[""] = text
    return node


def _parse_xml(raw: bytes, _schema: str | None, _base: Path | str, _limit: int) -> Any:
    if not raw.strip():
        return None
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    try:
        root = fromstring(raw, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except ParseError as exc:
        line, column = exc.position
        raise FormatError(f"invalid XML at line {line} column {column + 1}") from None
    except DefusedXmlException as exc:
        raise FormatError(
            f"XML rejected: {type(exc).__name__} (entities and external references are not allowed)"
        ) from None
    return _xml_element(root)


# --------------------------------------------------------------------------- csv


def _delimited(delimiter: str) -> Callable[[bytes, str | None, Path | str, int], Any]:
    def parse(raw: bytes, _schema: str | None, _base: Path | str, _limit: int) -> Any:
        text = _decode(raw, "CSV")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
        try:
            header: list[str] | None = None
            rows: list[dict[str, str]] = []
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if header is None:
                    header = [cell.strip() for cell in row]
                    continue
                cells = row + [""] * (len(header) - len(row))
                rows.append(dict(zip(header, cells, strict=False)))
        except csv.Error as exc:
            raise FormatError(f"invalid CSV at line {reader.line_num}: {exc}") from None
        return rows

    return parse


# --------------------------------------------------------------------------- html


def _cell_text(cell: Any) -> str:
    """Cell text trimmed with inner whitespace collapsed (as a browser shows it)."""
    return " ".join(cell.get_text().split())


def _html_tables(tables: list[Any]) -> list[list[dict[str, str]]]:
    result = []
    for table in tables:
        rows = [row for row in table.find_all("tr") if row.find_parent("table") is table]
        head_row = None
        thead = table.find("thead")
        if thead is not None and thead.find_parent("table") is table:
            head_row = next((row for row in rows if row.find_parent("thead") is thead), None)
        if head_row is None and rows:
            head_row = rows[0]
        if head_row is None:
            continue
        headers = [_cell_text(cell) for cell in head_row.find_all("th", recursive=False)]
        if not headers:
            continue  # tables without headers are skipped
        tbody = table.find("tbody")
        if tbody is not None and tbody.find_parent("table") is table:
            body_rows = [row for row in rows if row.find_parent("tbody") is tbody]
        else:
            body_rows = rows
        shaped = []
        for row in body_rows:
            if row.find("th", recursive=False) is not None:
                continue
            cells = [_cell_text(cell) for cell in row.find_all("td", recursive=False)]
            shaped.append(
                {header: cells[i] if i < len(cells) else "" for i, header in enumerate(headers)}
            )
        result.append(shaped)
    return result


def _parse_html(raw: bytes, schema: str | None, _base: Path | str, _limit: int) -> Any:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(raw, "html.parser")
    if schema:
        tables: list[Any] = []
        seen: set[int] = set()
        try:
            matched = soup.select(schema)
        except Exception as exc:  # soupsieve.SelectorSyntaxError, caught at load normally
            raise FormatError(f"outputSchema is not a valid CSS selector: {exc}") from None
        for element in matched:
            found = [element] if element.name == "table" else element.find_all("table")
            for table in found:
                if id(table) not in seen:
                    seen.add(id(table))
                    tables.append(table)
    else:
        tables = soup.find_all("table")
    return {"tables": _html_tables(tables)}


# --------------------------------------------------------------------------- markdown


def _front_matter(text: str, limit: int) -> tuple[dict[str, Any], str]:
    if not text.startswith("---\n") and not text.startswith("---\r\n"):
        return {}, text
    lines = text.splitlines(keepends=True)
    for index in range(1, len(lines)):
        if lines[index].rstrip("\r\n") == "---":
            block = "".join(lines[1:index])
            try:
                data = yaml.safe_load(block)
            except yaml.MarkedYAMLError as exc:
                mark = exc.problem_mark
                where = f" at line {mark.line + 2}" if mark else ""
                raise FormatError(f"invalid front matter YAML: {exc.problem}{where}") from None
            except yaml.YAMLError as exc:
                raise FormatError(f"invalid front matter YAML: {type(exc).__name__}") from None
            front = _jsonable(data, _Budget(limit)) if isinstance(data, dict) else {}
            return front, "".join(lines[index + 1 :])
    return {}, text


def _inline_text(token: Any) -> str:
    """Plain text of an inline token (markup dropped, line breaks kept)."""
    parts = []
    for child in token.children or ():
        if child.type in ("text", "code_inline", "html_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "image":
            parts.append(child.content)
    return "".join(parts)


def _parse_markdown(raw: bytes, schema: str | None, _base: Path | str, _limit: int) -> Any:
    front, body = _front_matter(_decode(raw, "Markdown"), _limit)
    tokens = _markdown().parse(body)
    tables: list[list[dict[str, str]]] = []
    sections: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    content: list[str] = []
    index = 0
    depth_in_table = 0
    headers: list[str] = []
    row: list[str] = []
    in_head = False
    table_rows: list[dict[str, str]] = []

    def close_section() -> None:
        if current is not None:
            current["content"] = "\n".join(content)
            sections.append(current)

    while index < len(tokens):
        token = tokens[index]
        kind = token.type
        if kind == "heading_open":
            close_section()
            inline = tokens[index + 1]
            current = {"heading": _inline_text(inline), "level": int(token.tag[1:])}
            content = []
            index += 3
            continue
        if kind == "table_open":
            depth_in_table += 1
            headers, table_rows = [], []
        elif kind == "table_close":
            depth_in_table -= 1
            tables.append(table_rows)
        elif kind == "thead_open":
            in_head = True
        elif kind == "thead_close":
            in_head = False
        elif kind == "tr_open":
            row = []
        elif kind == "tr_close":
            if in_head:
                headers = row
            else:
                table_rows.append(
                    {h: row[i] if i < len(row) else "" for i, h in enumerate(headers)}
                )
        elif kind == "inline" and depth_in_table:
            row.append(_inline_text(token).strip())
        elif kind == "inline" and current is not None:
            text = _inline_text(token)
            if text:
                content.append(text)
        elif kind in ("fence", "code_block") and current is not None:
            content.append(token.content.rstrip("\n"))
        elif kind == "html_block" and current is not None:
            content.append(token.content.strip())
        index += 1
    close_section()
    if schema:
        sections = [s for s in sections if s["heading"].startswith(schema)]
    return {"frontMatter": front, "tables": tables, "sections": sections}


@lru_cache(maxsize=1)
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table")


# --------------------------------------------------------------------------- avro


@lru_cache(maxsize=64)
def _avro_schema(path: str) -> Any:
    import fastavro

    try:
        with open(path, encoding="utf-8") as handle:
            definition = json.load(handle)
    except FileNotFoundError:
        raise FormatError(f"Avro outputSchema file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise FormatError(f"Avro outputSchema {path} cannot be read: {exc}") from None
    try:
        return fastavro.parse_schema(definition)
    except Exception as exc:
        raise FormatError(f"Avro outputSchema {path} is not a valid schema: {exc}") from None


def _parse_avro(raw: bytes, schema: str | None, base_dir: Path | str, _limit: int) -> Any:
    import fastavro

    if not schema:
        raise FormatError("outputRawFormat 'avro' requires outputSchema (an .avsc file)")
    parsed = _avro_schema(str(_schema_path(schema, base_dir).resolve()))
    stream = io.BytesIO(raw)
    try:
        record = fastavro.schemaless_reader(stream, parsed, None)
    except Exception as exc:
        raise FormatError(
            f"invalid Avro record: {type(exc).__name__} at byte {stream.tell()}"
        ) from None
    return _jsonable(record, _Budget(_limit))


# --------------------------------------------------------------------------- text / binary


def _parse_text(raw: bytes, _schema: str | None, _base: Path | str, _limit: int) -> Any:
    return raw.decode("utf-8", "replace")


def _parse_binary(raw: bytes, _schema: str | None, _base: Path | str, _limit: int) -> Any:
    return raw


_PARSERS: Final[dict[str, Callable[[bytes, str | None, Path | str, int], Any]]] = {
    "json": _parse_json,
    "xml": _parse_xml,
    "yaml": _parse_yaml,
    "csv": _delimited(","),
    "tsv": _delimited("\t"),
    "psv": _delimited("|"),
    "html": _parse_html,
    "markdown": _parse_markdown,
    "avro": _parse_avro,
    "text": _parse_text,
    "binary": _parse_binary,
}
