"""Moving memories in and out of a store: lossless JSONL export, and imports of exports and conversations.

Formats (`detect_format` tells them apart by content):

- ``export``: a memstrata export: a header line ``{"type": "memstrata-export", "version": 2, ...}``,
  then one ``{"type": "record", ...}`` line per record (every field, times as ISO 8601, and its history),
  then one ``{"type": "link", "src", "dst", "kind", "weight"}`` line per link between them. A record's
  ``vector`` (base64 little-endian float32, from the header's ``embedding_model``) is kept on import
  when the importing store uses that model, so the same records, history, links and vectors give the
  same search results; under another model the records are embedded again (nothing is re-extracted).
- ``json``: a list of messages, or ``{"messages": [...]}``.
- ``jsonl``: one message per line.
- ``locomo``: the LoCoMo benchmark's JSON (each conversation into its own user).

A message is an object with ``content`` and optionally ``role``, ``speaker`` (or ``name``),
``timestamp``, ``metadata``, ``kind`` and ``session_id``.

Atomicity: a file is read and validated completely before the first write, so a bad file
(malformed JSON, a bad timestamp, empty content, ...) writes nothing and the error names the
file, the line (or item) and what is wrong. Writes then go in batches of one transaction each;
if a write fails midway (disk full, database locked too long), the batches before it stay
and the error names the line where the failed batch starts.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence, TextIO

import numpy as np
from pydantic import ValidationError

from . import validate as check
from .errors import EmptyContent, InvalidInput, MemstrataError
from .formats.locomo import Conversation, load_locomo
from .ids import PREFIXES, kind_of, new_ulid
from .model import RECORD_TYPES, HistoryEvent, Layer, Record, Scope, SearchFilters
from .timeutil import iso, now

if TYPE_CHECKING:  # pragma: no cover
    from .memory import Memory

#: Called after each written batch with (items done, items in total).
ProgressFn = Callable[[int, int], None]

EXPORT_TYPE = "memstrata-export"
EXPORT_VERSION = 2
FORMATS = ("auto", "export", "json", "jsonl", "locomo")
#: Keys a message in a JSON / JSONL conversation file may have.
MESSAGE_KEYS = frozenset({"role", "content", "speaker", "name", "timestamp", "metadata", "kind", "session_id"})
#: Items per write transaction (and per progress step); at most limits.MAX_ITEMS_PER_ADD.
BATCH = 256
#: An import of at least this many records refreshes the store's planner statistics when it is done.
ANALYZE_AFTER = 1_000
_PAGE = 500
_TIME_FIELDS = ("event_time", "created_at", "updated_at", "valid_from", "valid_to")
_LAYER_KIND = {Layer.EPISODE: "episode", Layer.NOTE: "note", Layer.TOPIC: "topic", Layer.PROFILE: "profile"}


@dataclass(frozen=True)
class ImportResult:
    """What an import stored."""

    format: str
    records: int
    #: Labels of the scopes written to, e.g. ``user=ana``.
    scopes: list[str]


@dataclass(frozen=True)
class MessageItem:
    """One validated message, where it came from, and the scope (with session) it goes to."""

    where: str
    scope: Scope
    message: dict[str, Any]


# ---------------------------------------------------------------------- export


def iter_records(memory: "Memory", scope: Scope, layers: Sequence[int] | None = None) -> Iterator[Record]:
    """Every record in `scope` (of `layers`, default all; active or not), oldest first, page by page."""
    filters = SearchFilters(include_inactive=True, layers=list(layers) if layers is not None else None)
    cursor: str | None = None
    while True:
        page = memory.store.list(scope, filters, limit=_PAGE, cursor=cursor)
        yield from page.items
        if not page.next_cursor:
            return
        cursor = page.next_cursor


def record_to_json(memory: "Memory", record: Record, scope: Scope) -> dict[str, Any]:
    """One export line: every field of the record, its layer, and its history events."""
    history = memory.store.history(record.id, scope)
    return {
        "type": "record",
        "layer": record.layer_value,
        **record.model_dump(mode="json"),
        "history": [event.model_dump(mode="json") for event in history],
    }


def export_jsonl(
    memory: "Memory",
    out: TextIO | str | Path,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    progress: ProgressFn | None = None,
) -> int:
    """Write every record of a scope as JSONL (header line first); returns the number of records.

    A scope is required (exporting the whole store needs a store-level list of scopes, which the
    store protocol does not offer yet). A path is written to a temporary file and renamed when
    complete, so a failed export never leaves a truncated file behind.
    """
    scope = Scope.of(user_id, agent_id)
    if not isinstance(out, (str, Path)):
        return _write_export(memory, scope, out, progress)
    path = Path(out)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            count = _write_export(memory, scope, fh, progress)
        os.replace(tmp, path)
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}", field="out") from None
    finally:
        tmp.unlink(missing_ok=True)
    return count


def _write_export(memory: "Memory", scope: Scope, fh: TextIO, progress: ProgressFn | None) -> int:
    header = {
        "type": EXPORT_TYPE,
        "version": EXPORT_VERSION,
        "scope": scope.model_dump(exclude_none=True),
        "embedding_model": memory.embedder.name,
        "exported_at": iso(now()),
        "memstrata_version": _version(),
    }
    fh.write(_dumps(header))
    total = _count(memory, scope) if progress else 0
    count = 0
    ids: list[str] = []
    page: list[Record] = []
    records = iter_records(memory, scope)
    while True:
        record = next(records, None)
        if record is not None:
            page.append(record)
        if page and (record is None or len(page) == _PAGE):
            vectors = memory.store.vectors([r.id for r in page], memory.embedder.name, scope)
            for rec in page:
                line = record_to_json(memory, rec, scope)
                if rec.id in vectors:
                    line["vector"] = encode_vector(vectors[rec.id])
                fh.write(_dumps(line))
                ids.append(rec.id)
                count += 1
                if progress and (count % BATCH == 0 or count == total):
                    progress(count, max(total, count))
            page = []
        if record is None:
            break
    for i in range(0, len(ids), _PAGE):
        for src, dst, kind, weight in memory.store.neighbours(ids[i : i + _PAGE], scope):
            fh.write(_dumps({"type": "link", "src": src, "dst": dst, "kind": kind, "weight": weight}))
    return count


def encode_vector(vector: np.ndarray) -> str:
    """A vector as base64 of its little-endian float32 bytes."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(text: Any, where: str) -> np.ndarray:
    """The inverse of `encode_vector`; errors name `where`."""
    try:
        raw = base64.b64decode(text, validate=True)
        if not raw or len(raw) % 4:
            raise ValueError("not a whole number of float32 values")
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{where}: vector is not base64 float32 ({exc})", field="vector") from None
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def _count(memory: "Memory", scope: Scope) -> int:
    """Records in the scope, every layer and status (for progress)."""
    counts = memory.stats(user_id=scope.user_id, agent_id=scope.agent_id)["records"]
    return sum(n for by_status in counts.values() for n in by_status.values())


def _version() -> str:
    try:
        return metadata.version("memstrata")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


# ---------------------------------------------------------------------- reading files


def _open_text(path: Path) -> TextIO:
    try:
        if path.is_dir():
            raise InvalidInput(f"{path} is a directory; give a file", field="path")
        return open(path, encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidInput(f"{path} does not exist", field="path") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}", field="path") from None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, stripped text) of each non-blank line."""
    with _open_text(path) as fh:
        try:
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    yield number, line.strip()
        except UnicodeDecodeError:
            raise InvalidInput(f"{path} is not UTF-8 text", field="path") from None


def _jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of each non-blank line; a malformed line raises naming it."""
    for number, line in _lines(path):
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"{path} line {number}: not valid JSON ({exc.msg} at column {exc.colno})", field="path"
            ) from None


def _json(path: Path) -> Any:
    """The whole file parsed as one JSON document."""
    with _open_text(path) as fh:
        try:
            return json.load(fh)
        except UnicodeDecodeError:
            raise InvalidInput(f"{path} is not UTF-8 text", field="path") from None
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"{path} line {exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})", field="path"
            ) from None


def detect_format(path: str | Path) -> str:
    """"export", "json", "jsonl" or "locomo", from the file's content."""
    path = Path(path)
    first = next((text for _, text in _lines(path)), "")
    if first.startswith("["):
        data = _json(path)
        return "locomo" if data and all(isinstance(s, dict) and "conversation" in s for s in data) else "json"
    if first.startswith("{"):
        try:
            head = json.loads(first)
        except json.JSONDecodeError:
            head = _json(path)  # a pretty-printed JSON object
        if isinstance(head, dict):
            if head.get("type") == EXPORT_TYPE:
                return "export"
            if "conversation" in head:
                return "locomo"
            return "json" if "messages" in head else "jsonl"
    if not first:
        raise InvalidInput(f"{path} is empty", field="path")
    raise InvalidInput(
        f"{path} is not a format memstrata imports: expected JSON (a list of messages or "
        '{"messages": [...]}), JSONL (one message object per line), LoCoMo JSON or a memstrata export',
        field="path",
    )


# ---------------------------------------------------------------------- messages


def _located(exc: MemstrataError, where: str, note: str = "") -> MemstrataError:
    """The same kind of error, its message prefixed with where it happened."""
    return type(exc)(f"{where}: {exc.message}{note}", field=exc.field)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def check_message(obj: Any, where: str, scope: Scope) -> MessageItem:
    """Validate one message object (as `Memory.add` would) into a `MessageItem`; errors name `where`."""
    try:
        if not isinstance(obj, dict):
            raise InvalidInput(f"expected a message object with 'content', got {_json_type(obj)}")
        unknown = set(obj) - MESSAGE_KEYS
        if unknown:
            raise InvalidInput(f"unknown key(s) {sorted(unknown)}; a message may have {sorted(MESSAGE_KEYS)}")
        if "content" not in obj:
            raise EmptyContent("'content' is missing", field="content")
        message: dict[str, Any] = {"content": check.text(obj["content"], "content")}
        for key in ("role", "kind"):
            if obj.get(key) is not None:
                message[key] = check.optional_name(obj[key], key)
        speaker = obj.get("speaker", obj.get("name"))
        if speaker is not None:
            message["speaker"] = check.optional_name(speaker, "speaker")
        if obj.get("timestamp") is not None:
            message["timestamp"] = check.timestamp(obj["timestamp"], "timestamp")
        if obj.get("metadata") is not None:
            message["metadata"] = check.metadata(obj["metadata"])
        session = obj.get("session_id", scope.session_id)
        target = Scope.of(scope.user_id, scope.agent_id, session)
    except MemstrataError as exc:
        raise _located(exc, where) from None
    return MessageItem(where=where, scope=target, message=message)


def _conversation_items(path: Path, fmt: str, scope: Scope) -> list[MessageItem]:
    if fmt == "jsonl":
        return [check_message(obj, f"{path} line {n}", scope) for n, obj in _jsonl(path)]
    data = _json(path)
    if isinstance(data, dict):
        data = data.get("messages")
    if not isinstance(data, list):
        raise InvalidInput(f'{path}: expected a list of messages or {{"messages": [...]}}', field="path")
    return [check_message(obj, f"{path} messages[{i}]", scope) for i, obj in enumerate(data)]


def _batches(items: Sequence[MessageItem]) -> Iterator[list[MessageItem]]:
    """Consecutive items of the same scope and session, at most `BATCH` at a time."""
    for _, group in groupby(items, key=lambda item: item.scope):
        run = list(group)
        for i in range(0, len(run), BATCH):
            yield run[i : i + BATCH]


def add_items(memory: "Memory", items: Sequence[MessageItem], progress: ProgressFn | None = None) -> int:
    """`Memory.add` each batch (one transaction each); returns how many messages were stored."""
    done = 0
    for batch in _batches(items):
        scope = batch[0].scope
        try:
            memory.add(
                [item.message for item in batch],
                user_id=scope.user_id, agent_id=scope.agent_id, session_id=scope.session_id,
            )
        except MemstrataError as exc:
            raise _located(exc, batch[0].where, f" ({done} messages before it were imported)") from None
        done += len(batch)
        if progress:
            progress(done, len(items))
    return done


def _labels(scopes: Iterable[Scope]) -> list[str]:
    return sorted({Scope.of(s.user_id, s.agent_id).label() for s in scopes})


# ---------------------------------------------------------------------- exports (re-import)


def _export_header(path: Path, number: int, obj: Any) -> None:
    if not isinstance(obj, dict) or obj.get("type") != EXPORT_TYPE:
        raise InvalidInput(f"{path} line {number}: expected a memstrata export header", field="path")
    version = obj.get("version")
    if not isinstance(version, int) or version > EXPORT_VERSION:
        raise InvalidInput(
            f"{path}: export version {version!r} is newer than this memstrata reads ({EXPORT_VERSION}); "
            "upgrade memstrata",
            field="path",
        )


def parse_record(obj: Any, where: str) -> Record:
    """One export line -> a `Record` of its layer; errors name `where`."""
    if not isinstance(obj, dict) or obj.get("type") != "record":
        raise InvalidInput(f'{where}: expected a {{"type": "record", ...}} object', field="path")
    cls = RECORD_TYPES.get(obj.get("layer"))  # type: ignore[arg-type]
    if cls is None:
        raise InvalidInput(f"{where}: layer must be 0, 1, 2 or 3, got {obj.get('layer')!r}", field="layer")
    fields = {k: v for k, v in obj.items() if k not in ("type", "layer", "history", "vector")}
    try:
        record = cls.model_validate(fields)
        check.text(record.content, "content")
        Scope.of(record.user_id, record.agent_id)  # a record belongs to a user and/or an agent
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise InvalidInput(f"{where}: {loc}: {err['msg']}", field=loc) from None
    except MemstrataError as exc:
        raise _located(exc, where) from None
    return _as_utc(record)


def _as_utc(record: Record) -> Record:
    """Times without a zone are taken as UTC (as everywhere else in memstrata)."""
    update = {
        name: value.replace(tzinfo=timezone.utc)
        for name in _TIME_FIELDS
        if isinstance(value := getattr(record, name), datetime) and value.tzinfo is None
    }
    return record.model_copy(update=update) if update else record


Link = tuple[str, str, str, float]


@dataclass
class _Export:
    """An export file, validated: records (with where each was read), their history, the links."""

    records: list[tuple[str, Record]]
    history: dict[str, list[HistoryEvent]]
    links: list[Link]
    #: Stored vectors by record id, and the model that made them.
    vectors: dict[str, np.ndarray]
    model: str | None = None


def parse_history(obj: dict, where: str) -> list[HistoryEvent]:
    """The history events of an export line (none in an export without them)."""
    events = obj.get("history") or []
    if not isinstance(events, list):
        raise InvalidInput(f"{where}: history must be a list of events", field="history")
    out: list[HistoryEvent] = []
    for event in events:
        try:
            parsed = HistoryEvent.model_validate({**event, "record_id": obj.get("id")})
        except (ValidationError, TypeError) as exc:
            raise InvalidInput(f"{where}: history event is malformed ({exc})".splitlines()[0], field="history") from None
        if parsed.at.tzinfo is None:
            parsed = parsed.model_copy(update={"at": parsed.at.replace(tzinfo=timezone.utc)})
        out.append(parsed)
    return out


def parse_link(obj: dict, where: str, ids: set[str]) -> Link:
    """One link line -> (src, dst, kind, weight); both ends must be records of the file."""
    src, dst, kind, weight = obj.get("src"), obj.get("dst"), obj.get("kind"), obj.get("weight", 1.0)
    if not (isinstance(kind, str) and kind and isinstance(weight, (int, float)) and not isinstance(weight, bool)):
        raise InvalidInput(f"{where}: a link needs a kind (text) and a numeric weight", field="link")
    for end in (src, dst):
        if end not in ids:
            raise InvalidInput(f"{where}: link end {end!r} is not a record of this file", field="link")
    return src, dst, kind, float(weight)


def _read_export(path: Path) -> _Export:
    lines = _jsonl(path)
    first = next(lines, None)
    if first is None:
        raise InvalidInput(f"{path} is empty", field="path")
    _export_header(path, *first)
    data = _Export([], {}, [], {}, first[1].get("embedding_model"))
    seen: set[str] = set()
    for number, obj in lines:
        where = f"{path} line {number}"
        if isinstance(obj, dict) and obj.get("type") == "link":
            data.links.append(parse_link(obj, where, seen))
            continue
        record = parse_record(obj, where)
        if record.id in seen:
            raise InvalidInput(f"{where}: id {record.id!r} appears twice in the file", field="id")
        seen.add(record.id)
        data.records.append((where, record))
        data.history[record.id] = parse_history(obj, where)
        if obj.get("vector") is not None:
            data.vectors[record.id] = decode_vector(obj["vector"], where)
    return data


def _rescope(records: list[tuple[str, Record]], target: Scope | None) -> list[tuple[str, Record]]:
    if target is None:
        return records
    update = {"user_id": target.user_id, "agent_id": target.agent_id}
    return [(where, rec.model_copy(update=update)) for where, rec in records]


def _fresh_ids(records: list[tuple[str, Record]]) -> list[tuple[str, Record]]:
    """Give every record a new id (same kind prefix), pointing sources inside the file at the new ids."""
    mapping = {}
    for _, rec in records:
        kind = kind_of(rec.id) or _LAYER_KIND[type(rec).layer]
        mapping[rec.id] = f"{PREFIXES[kind]}_{new_ulid()}"
    return [
        (where, rec.model_copy(update={"id": mapping[rec.id], "sources": [mapping.get(s, s) for s in rec.sources]}))
        for where, rec in records
    ]


def _check_new_ids(
    memory: "Memory", path: Path, records: Sequence[tuple[str, Record]], scopes: Iterable[Scope]
) -> None:
    """Refuse (before writing anything) ids that already exist in any scope the import touches."""
    ids = [rec.id for _, rec in records]
    for scope in {Scope.of(s.user_id, s.agent_id) for s in scopes}:
        for i in range(0, len(ids), _PAGE):
            found = memory.store.get(ids[i : i + _PAGE], scope)
            if found:
                raise InvalidInput(
                    f"{path}: memory id {found[0].id!r} (and maybe others) already exists in this database; "
                    "import into another --db, or pass --new-ids to import copies with fresh ids",
                    field="id",
                )


def _put_all(
    memory: "Memory",
    records: Sequence[tuple[str, Record]],
    progress: ProgressFn | None,
    history: dict[str, list[HistoryEvent]] | None = None,
    vectors: dict[str, np.ndarray] | None = None,
) -> int:
    """Embed and store prebuilt records in batches (one transaction each), keeping ids and times;
    `history` (record id -> events) replaces the 'created' event each put writes; `vectors` (record
    id -> vector of the memory's model) are used as they are, the other records are embedded."""
    done = 0
    given = {k: v for k, v in (vectors or {}).items() if v.shape == (memory.embedder.dim,)}
    for i in range(0, len(records), BATCH):
        batch = [rec for _, rec in records[i : i + BATCH]]
        try:
            missing = [rec for rec in batch if rec.id not in given]
            made = dict(zip((r.id for r in missing), memory.embedder.embed([r.embedding_text for r in missing])))
            matrix = np.stack([given[rec.id] if rec.id in given else made[rec.id] for rec in batch])
            memory.store.put(batch, matrix, memory.embedder.name, actor="import")
            events = [e for rec in batch for e in (history or {}).get(rec.id, [])]
            if events:
                memory.store.put_history(events)
        except MemstrataError as exc:
            raise _located(exc, records[i][0], f" ({done} records before it were imported)") from None
        done += len(batch)
        if progress:
            progress(done, len(records))
    return done


def _import_export(
    memory: "Memory", path: Path, target: Scope | None, new_ids: bool, progress: ProgressFn | None
) -> ImportResult:
    data = _read_export(path)
    original = data.records
    records = _rescope(original, target)
    if new_ids:
        records = _fresh_ids(records)
    else:
        _check_new_ids(memory, path, records, [r.scope for _, r in original + records])
    new_id_of = {old.id: new.id for (_, old), (_, new) in zip(original, records)}
    history = {
        new_id_of[old]: [e.model_copy(update={"record_id": new_id_of[old]}) for e in events]
        for old, events in data.history.items()
    }
    same_model = data.model == memory.embedder.name
    vectors = {new_id_of[k]: v for k, v in data.vectors.items()} if same_model else {}
    count = _put_all(memory, records, progress, history, vectors)
    if data.links:
        memory.store.put_links([(new_id_of[a], new_id_of[b], kind, w) for a, b, kind, w in data.links])
    if count >= ANALYZE_AFTER:
        memory.store.analyze()
    return ImportResult("export", count, _labels(r.scope for _, r in records))


# ---------------------------------------------------------------------- public imports


def import_jsonl(
    memory: "Memory",
    path: str | Path,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    session_id: str | None = None,
    format: str = "auto",
    new_ids: bool = False,
    progress: ProgressFn | None = None,
) -> ImportResult:
    """Import a memstrata export or a JSON / JSONL conversation into a scope.

    Conversations need a scope (`user_id` and/or `agent_id`); `session_id` applies to messages
    without their own. An export keeps its records' ids, times, layers and sources; its records
    move to the given scope, or keep their own when none is given. Importing ids that already
    exist is refused unless `new_ids=True` (fresh ids; sources inside the file follow).
    """
    path = Path(path)
    fmt = detect_format(path) if format == "auto" else _known_format(format)
    if fmt == "locomo":
        raise InvalidInput(f"{path} is a LoCoMo file; import it with import_locomo (--format locomo)", field="format")
    given = user_id is not None or agent_id is not None
    if fmt == "export":
        target = Scope.of(user_id, agent_id) if given else None
        return _import_export(memory, path, target, new_ids, progress)
    scope = Scope.of(user_id, agent_id, session_id)
    items = _conversation_items(path, fmt, scope)
    if not items:
        raise InvalidInput(f"{path} holds no messages", field="path")
    count = add_items(memory, items, progress)
    return ImportResult(fmt, count, _labels(item.scope for item in items))


def locomo_items(conversations: Iterable[Conversation], user_id_prefix: str | None, source: str) -> list[MessageItem]:
    """Every turn as a validated message for user ``prefix + sample_id``, session per LoCoMo session."""
    items: list[MessageItem] = []
    for conv in conversations:
        user = f"{user_id_prefix or ''}{conv.sample_id}"
        for turn in conv.turns:
            scope = Scope.of(user, None, conv.session_id(turn.session))
            items.append(check_message(turn.message(), f"{source} {conv.sample_id} turn {turn.dia_id}", scope))
    return items


def import_locomo(
    memory: "Memory", path: str | Path, *, user_id_prefix: str | None = None, progress: ProgressFn | None = None
) -> ImportResult:
    """Import LoCoMo conversations: each into user ``prefix + sample_id``, one session per LoCoMo session.

    Turns are added in session order, one `add` per session; each episode's metadata keeps the
    turn's ``dia_id`` and session number.
    """
    path = Path(path)
    try:
        conversations = load_locomo(path)
    except MemstrataError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"{path} is not valid LoCoMo data (missing or malformed {exc})", field="path") from None
    items = locomo_items(conversations, user_id_prefix, str(path))
    if not items:
        raise InvalidInput(f"{path} holds no dialogue turns", field="path")
    count = add_items(memory, items, progress)
    return ImportResult("locomo", count, _labels(item.scope for item in items))


def import_file(
    memory: "Memory",
    path: str | Path,
    *,
    format: str = "auto",
    user_id: str | None = None,
    agent_id: str | None = None,
    session_id: str | None = None,
    user_id_prefix: str | None = None,
    new_ids: bool = False,
    progress: ProgressFn | None = None,
) -> ImportResult:
    """Import any supported file (see the module docs); `format="auto"` detects it from the content."""
    fmt = detect_format(path) if format == "auto" else _known_format(format)
    if fmt == "locomo":
        if user_id is not None or agent_id is not None or session_id is not None:
            raise InvalidInput(
                "each LoCoMo conversation goes to its own user (prefix + sample_id); "
                "use --prefix instead of --user/--agent/--session",
                field="user_id",
            )
        return import_locomo(memory, path, user_id_prefix=user_id_prefix, progress=progress)
    if user_id_prefix is not None:
        raise InvalidInput("--prefix applies to LoCoMo files only; use --user/--agent", field="user_id_prefix")
    return import_jsonl(
        memory, path, user_id=user_id, agent_id=agent_id, session_id=session_id, format=fmt, new_ids=new_ids,
        progress=progress,
    )


def _known_format(name: str) -> str:
    if name not in FORMATS:
        raise InvalidInput(f"unknown format {name!r}; choose one of {', '.join(FORMATS)}", field="format")
    return name

