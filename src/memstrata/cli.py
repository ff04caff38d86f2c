"""The `memstrata` command line (typer + rich).

    memstrata add "I moved to Lisbon last week" --user ana
    memstrata search "where does Ana live?" --user ana
    memstrata context "where does Ana live?" --user ana --budget 300
    memstrata import chat.jsonl --user ana        # JSON, JSONL, LoCoMo or a memstrata export
    memstrata export --user ana --out ana.jsonl
    memstrata demo

The database is `--db PATH`, else $MEMSTRATA_DB, else ~/.memstrata/memstrata.db; `--config FILE`
(or $MEMSTRATA_CONFIG) reads TOML settings. $MEMSTRATA_USER / $MEMSTRATA_AGENT set a default scope.
Human output is rich tables; `--json` gives machine output on stdout. Progress bars go to stderr.

Errors are one line on stderr, ``error: <what is wrong and what to do>``, and an exit code:
0 ok, 1 other error, 2 bad input / usage / settings, 3 not found, 4 store error (a damaged,
foreign or too-new database), 130 interrupted. An unexpected failure prints
``internal error: ...``; rerun with MEMSTRATA_DEBUG=1 to see the traceback.

Command groups owned elsewhere (bench, serve, mcp, organise) plug in through `_OPTIONAL_GROUPS`.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
import traceback
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Iterable, Iterator, Optional, Sequence

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import validate as check
from .config import Settings, redact_url
from .errors import ConfigError, InvalidInput, MemstrataError, NotFound, ScopeRequired, StoreError
from .memory import Memory
from .model import Record, Scope, SearchHit
from .transfer import ProgressFn, export_jsonl, import_file

#: (module, attribute, command name) of sub-apps added when their module exists; one line per group.
_OPTIONAL_GROUPS: tuple[tuple[str, str, str], ...] = (
    ("memstrata.bench.cli", "bench_app", "bench"),
    ("memstrata.server.cli", "serve_app", "serve"),
    ("memstrata.server.cli", "keys_app", "keys"),
    ("memstrata.server.cli", "mcp_app", "mcp"),
)

EXIT_OK, EXIT_ERROR, EXIT_INPUT, EXIT_NOT_FOUND, EXIT_STORE, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130

app = typer.Typer(
    name="memstrata",
    help="Layered long-term memory for LLM agents: add what happened, search it, get a memory block.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# ---------------------------------------------------------------------- shared options

UserOpt = Annotated[Optional[str], typer.Option("--user", "-u", envvar="MEMSTRATA_USER", help="User id (scope).")]
AgentOpt = Annotated[Optional[str], typer.Option("--agent", "-a", envvar="MEMSTRATA_AGENT", help="Agent id (scope).")]
SessionOpt = Annotated[Optional[str], typer.Option("--session", "-s", help="Session id (narrows the scope).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]
MetaOpt = Annotated[
    Optional[list[str]],
    typer.Option("--meta", "-m", help="Metadata key=value (repeatable); a value that parses as JSON is JSON."),
]
IdArg = Annotated[str, typer.Argument(help="Memory id, e.g. ep_01J...", show_default=False)]
AsOfOpt = Annotated[
    Optional[str], typer.Option("--as-of", help="Answer from what was valid at this time (default: now).")
]
ReferenceOpt = Annotated[
    Optional[str],
    typer.Option("--reference-time", help="When the query is asked, for the time it names ('last week'; default: now)."),
]
ArchivedOpt = Annotated[bool, typer.Option("--archived", help="Include archived (faded) memories.")]


@dataclass
class _State:
    """Global options, and the memory opened from them on first use."""

    db: Path | None
    config: Path | None
    _memory: Memory | None = None

    def settings(self, **overrides: Any) -> Settings:
        return Settings.load(self.config, **{"db": self.db, **overrides})

    def memory(self) -> Memory:
        if self._memory is None:
            self._memory = Memory(settings=self.settings())
        return self._memory

    def close(self) -> None:
        if self._memory is not None:
            self._memory.close()


@app.callback()
def _root(
    ctx: typer.Context,
    db: Annotated[
        Optional[Path],
        typer.Option("--db", help="Database file (env MEMSTRATA_DB; default ~/.memstrata/memstrata.db).", show_default=False),
    ] = None,
    config: Annotated[
        Optional[Path], typer.Option("--config", help="TOML settings file (env MEMSTRATA_CONFIG).", show_default=False)
    ] = None,
) -> None:
    """Layered long-term memory for LLM agents."""
    state = _State(db=db, config=config)
    _current.set(state)
    ctx.call_on_close(state.close)


#: The running command's state (set by the root callback).
_current: ContextVar[_State] = ContextVar("memstrata_cli_state")


def _state() -> _State:
    return _current.get()


def _memory() -> Memory:
    return _state().memory()


# ---------------------------------------------------------------------- output helpers


@cache
def _out() -> Console:
    return Console(markup=False, emoji=False, highlight=False)


@cache
def _err() -> Console:
    return Console(stderr=True, markup=False, emoji=False, highlight=False)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def _record_json(record: Record) -> dict[str, Any]:
    return {"layer": record.layer_value, **record.model_dump(mode="json")}


def _hit_json(hit: SearchHit) -> dict[str, Any]:
    return {"id": hit.id, "score": hit.score, "ranks": hit.ranks, "provenance": hit.provenance,
            "record": _record_json(hit.record)}


def _who(record: Record) -> str:
    return record.speaker or record.role or ""


def _records_table(records: Sequence[Record], scores: Sequence[float] | None = None) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    if scores is not None:
        table.add_column("score", justify="right", no_wrap=True)
    table.add_column("when", no_wrap=True)
    table.add_column("who", max_width=16)
    table.add_column("memory", ratio=1, overflow="fold")
    table.add_column("id", no_wrap=True)
    for i, rec in enumerate(records):
        row = [f"{rec.event_time:%Y-%m-%d}", _who(rec), rec.content, rec.id]
        table.add_row(*([f"{scores[i]:.3f}"] if scores is not None else []), *row)
    return table


def _key_values(rows: Iterable[tuple[str, Any]]) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column("key", style="dim", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in rows:
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        table.add_row(key, shown)
    return table


@contextmanager
def _progress(description: str) -> Iterator[ProgressFn]:
    """A progress callback drawing a rich bar on stderr, started on the first report (so a file
    that fails validation prints nothing but the error); in a log it prints the final state once."""
    bar: Progress | None = None
    task: Any = None

    def report(done: int, total: int) -> None:
        nonlocal bar, task
        if bar is None:
            bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=_err(),
            )
            bar.start()
            task = bar.add_task(description, total=total)
        bar.update(task, completed=done, total=total)

    try:
        yield report
    finally:
        if bar is not None:
            bar.stop()


def _parse_meta(pairs: Sequence[str] | None) -> dict[str, Any] | None:
    """``["k=v", ...]`` -> dict; a value that parses as JSON (number, true, [..]) is kept as JSON."""
    if not pairs:
        return None
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--meta {pair!r} must be key=value", field="metadata")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _read_text(text: str) -> str:
    """The argument, or stdin when it is ``-``."""
    return sys.stdin.read() if text == "-" else text


# ---------------------------------------------------------------------- writes


@app.command()
def add(
    text: Annotated[str, typer.Argument(help="What to remember ('-' reads stdin).", show_default=False)],
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    role: Annotated[Optional[str], typer.Option(help="user, assistant, system, tool, ...")] = None,
    speaker: Annotated[Optional[str], typer.Option(help="Who said it.")] = None,
    timestamp: Annotated[
        Optional[str], typer.Option(help="When it happened: ISO 8601 (2026-03-02T10:00:00Z) or epoch seconds.")
    ] = None,
    meta: MetaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remember a text (an L0 episode); searchable as soon as this returns."""
    content = check.text(_read_text(text), "TEXT")
    message = {k: v for k, v in {"content": content, "role": role, "speaker": speaker}.items() if v is not None}
    when: Any = float(timestamp) if timestamp and _is_number(timestamp) else timestamp
    result = _memory().add(
        message, user_id=user, agent_id=agent, session_id=session, timestamp=when, metadata=_parse_meta(meta)
    )
    if as_json:
        _print_json({
            "ids": result.ids,
            "episodes": [_record_json(e) for e in result.episodes],
            "notes": [_record_json(n) for n in result.notes],
        })
    else:
        notes = f"; {len(result.notes)} note(s) derived" if result.notes else ""
        _out().print(f"added {', '.join(result.ids)} ({result.episodes[0].scope.label()}){notes}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@app.command()
def update(
    memory_id: IdArg,
    content: Annotated[Optional[str], typer.Option(help="New text ('-' reads stdin).")] = None,
    meta: MetaOpt = None,
    user: UserOpt = None,
    agent: AgentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a memory's text and/or metadata (--meta replaces all metadata); the old text stays in history."""
    record = _memory().update(
        memory_id, content=_read_text(content) if content is not None else None, metadata=_parse_meta(meta),
        user_id=user, agent_id=agent,
    )
    if as_json:
        _print_json(_record_json(record))
    else:
        _out().print(f"updated {record.id}")


@app.command()
def delete(memory_id: IdArg, user: UserOpt = None, agent: AgentOpt = None) -> None:
    """Erase one memory from every layer and index."""
    _memory().delete(memory_id, user_id=user, agent_id=agent)
    _out().print(f"deleted {memory_id}")


@app.command()
def pin(
    memory_id: IdArg,
    user: UserOpt = None,
    agent: AgentOpt = None,
    unpin: Annotated[bool, typer.Option("--unpin", help="Let it fade again.")] = False,
) -> None:
    """Pin a memory so it never fades or expires (--unpin to undo)."""
    _memory().pin(memory_id, pinned=not unpin, user_id=user, agent_id=agent)
    _out().print(f"{'unpinned' if unpin else 'pinned'} {memory_id}")


@app.command()
def archive(memory_id: IdArg, user: UserOpt = None, agent: AgentOpt = None) -> None:
    """Take a memory out of default search; it stays stored (`memstrata restore` brings it back)."""
    _memory().archive(memory_id, user_id=user, agent_id=agent)
    _out().print(f"archived {memory_id}")


@app.command()
def restore(memory_id: IdArg, user: UserOpt = None, agent: AgentOpt = None) -> None:
    """Bring an archived (faded or expired) memory back to default search."""
    _memory().restore(memory_id, user_id=user, agent_id=agent)
    _out().print(f"restored {memory_id}")


@app.command("delete-all")
def delete_all(
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase every memory in a scope."""
    scope = Scope.of(user, agent, session)
    if not yes:
        if not sys.stdin.isatty():
            raise InvalidInput(f"delete-all erases every memory of {scope.label()}; pass --yes to confirm", field="yes")
        typer.confirm(f"Erase every memory of {scope.label()}?", abort=True)
    count = _memory().delete_all(user_id=user, agent_id=agent, session_id=session)
    _out().print(f"deleted {count} memories of {scope.label()}")


# ---------------------------------------------------------------------- reads


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.", show_default=False)],
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many results.")] = 10,
    since: Annotated[Optional[str], typer.Option("--from", help="Only memories at or after this time.")] = None,
    until: Annotated[Optional[str], typer.Option("--to", help="Only memories at or before this time.")] = None,
    recipe: Annotated[Optional[str], typer.Option(help="Retrieval recipe (default from settings).")] = None,
    as_of: AsOfOpt = None,
    reference_time: ReferenceOpt = None,
    archived: ArchivedOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Memories most relevant to a query, best first."""
    hits = _memory().search(
        query, user_id=user, agent_id=agent, session_id=session, limit=limit, time_from=since, time_to=until,
        recipe=recipe, as_of=as_of, include_archived=archived, reference_time=reference_time,
    )
    if as_json:
        _print_json([_hit_json(h) for h in hits])
    elif not hits:
        _err().print("no memories found")
    else:
        _out().print(_records_table([h.record for h in hits], [h.score for h in hits]))


@app.command()
def context(
    query: Annotated[str, typer.Argument(help="The question or task the block is for.", show_default=False)],
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    budget: Annotated[int, typer.Option("--budget", "-b", help="Token budget of the block.")] = 1000,
    as_of: AsOfOpt = None,
    reference_time: ReferenceOpt = None,
    archived: ArchivedOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """A memory block for a query, within a token budget; each line cites its source id."""
    block = _memory().context(
        query, user_id=user, agent_id=agent, session_id=session, budget_tokens=budget, as_of=as_of,
        include_archived=archived, reference_time=reference_time,
    )
    if as_json:
        _print_json(block.model_dump(mode="json"))
    elif not block.lines:
        _err().print("no memories found")
    else:
        sys.stdout.write(block.text + "\n")


@app.command()
def get(memory_id: IdArg, user: UserOpt = None, agent: AgentOpt = None, as_json: JsonOpt = False) -> None:
    """One memory with all its fields."""
    record = _memory().get(memory_id, user_id=user, agent_id=agent)
    if as_json:
        _print_json(_record_json(record))
    else:
        _out().print(_key_values(_record_json(record).items()))


@app.command("list")
def list_(
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Memories per page.")] = 20,
    cursor: Annotated[Optional[str], typer.Option(help="Continue after a previous page.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Memories in a scope, oldest first, a page at a time."""
    page = _memory().list(user_id=user, agent_id=agent, session_id=session, limit=limit, cursor=cursor)
    if as_json:
        _print_json({"items": [_record_json(r) for r in page.items], "next_cursor": page.next_cursor})
        return
    _out().print(_records_table(page.items))
    if page.next_cursor:
        _out().print(f"more: --cursor {page.next_cursor}")


@app.command()
def history(memory_id: IdArg, user: UserOpt = None, agent: AgentOpt = None, as_json: JsonOpt = False) -> None:
    """How one memory changed: created, updated, superseded, ..."""
    events = _memory().history(memory_id, user_id=user, agent_id=agent)
    if as_json:
        _print_json([e.model_dump(mode="json") for e in events])
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("at", "event", "actor", "old", "new"):
        table.add_column(name, overflow="fold", no_wrap=name in ("at", "event"))
    for e in events:
        table.add_row(f"{e.at:%Y-%m-%d %H:%M:%S}", e.event, e.actor, e.old_content or "", e.new_content or "")
    _out().print(table)


# ---------------------------------------------------------------------- import / export


class ImportFormat(str, Enum):
    auto = "auto"
    json = "json"
    jsonl = "jsonl"
    locomo = "locomo"
    export = "export"


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="File to import.", show_default=False)],
    format: Annotated[ImportFormat, typer.Option("--format", "-f", help="File format (auto: from the content).")] = (
        ImportFormat.auto
    ),
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    prefix: Annotated[Optional[str], typer.Option(help="LoCoMo only: user id = prefix + sample id.")] = None,
    new_ids: Annotated[bool, typer.Option("--new-ids", help="Exports: give records fresh ids (to copy them).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Import a JSON / JSONL conversation, a LoCoMo file, or a memstrata export (ids and times kept).

    A bad file writes nothing; the error names the line. An export's records go to --user/--agent if given, else to their own scope.
    """  # noqa: E501 - typer keeps line breaks
    with _progress(f"importing {file.name}") as progress:
        result = import_file(
            _memory(), file, format=format.value, user_id=user, agent_id=agent, session_id=session,
            user_id_prefix=prefix, new_ids=new_ids, progress=progress,
        )
    if as_json:
        _print_json({"format": result.format, "records": result.records, "scopes": result.scopes})
    else:
        _out().print(f"imported {result.records} memories ({result.format}) into {', '.join(result.scopes)}")


@app.command()
def export(
    user: UserOpt = None,
    agent: AgentOpt = None,
    out: Annotated[str, typer.Option("--out", "-o", help="Output file ('-' for stdout).")] = "-",
) -> None:
    """Write every memory of a scope as JSONL (lossless; `memstrata import` reads it back)."""
    with _progress("exporting") as progress:
        target = sys.stdout if out == "-" else Path(out)
        count = export_jsonl(_memory(), target, user_id=user, agent_id=agent, progress=progress)
    _err().print(f"exported {count} memories of {Scope.of(user, agent).label()}" + ("" if out == "-" else f" to {out}"))


@app.command()
def reembed(
    user: UserOpt = None,
    agent: AgentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Embed every memory with the configured embedding model (after changing it); nothing is re-extracted.

    Only memories without a vector from that model are embedded, so an interrupted run resumes.
    """
    memory = _memory()
    with _progress("re-embedding") as progress:
        count = memory.reembed(user_id=user, agent_id=agent, progress=lambda done, _total: progress(done, done))
    if as_json:
        _print_json({"model": memory.embedder.name, "embedded": count})
    else:
        _out().print(f"embedded {count} memories with {memory.embedder.name}")


@app.command()
def organise(
    user: UserOpt = None,
    agent: AgentOpt = None,
    max_work: Annotated[
        Optional[int], typer.Option("--max-work", help="Records each step may write per scope in this run.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Consolidate: link notes, build topic summaries and the topic tree, refresh profiles, decay and archive.

    Idempotent and resumable: run it again to finish what --max-work left, or after new memories arrive.
    Without --user/--agent every scope is organised.
    """
    memory = _memory()
    with _progress("organising") as progress:
        reports = memory.organise(user_id=user, agent_id=agent, max_work=max_work, progress=progress)
    if as_json:
        _print_json([{"scope": r.scope.label(), "steps": r.steps, "complete": r.complete} for r in reports])
        return
    table = Table("scope", "step", "changes", "complete")
    for r in reports:
        for name, counts in r.steps.items():
            table.add_row(r.scope.label(), name, ", ".join(f"{k} {v}" for k, v in counts.items()), str(r.complete))
    _out().print(table)


@app.command()
def vacuum() -> None:
    """Rewrite the database file so the bytes of deleted memories are gone from disk."""
    memory = _memory()
    before = memory.stats()
    memory.vacuum()
    _out().print(f"vacuumed {before['path']}: {before['file_bytes']:,} -> {memory.stats()['file_bytes']:,} bytes")


# ---------------------------------------------------------------------- store and settings


@app.command()
def stats(
    user: UserOpt = None,
    agent: AgentOpt = None,
    check: Annotated[bool, typer.Option("--check", help="Also run the store's integrity check.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Counts per layer and status, and the database's size; --check verifies its integrity."""
    memory = _memory()
    info = memory.stats(user_id=user, agent_id=agent)
    problems = memory.store.integrity_check() if check else None
    if problems is not None:
        info["integrity"] = problems or "ok"
    if as_json:
        _print_json(info)
    else:
        _out().print(_key_values(info.items()))
    if problems:
        raise typer.Exit(EXIT_STORE)


@app.command("config")
def show_config(as_json: JsonOpt = False) -> None:
    """Print the effective settings (file, then MEMSTRATA_* environment, then --db)."""
    values = _state().settings().model_dump(mode="json")
    if values.get("openai_api_key"):
        values["openai_api_key"] = "***"
    if values.get("postgres_url"):
        values["postgres_url"] = redact_url(values["postgres_url"])
    if as_json:
        _print_json(values)
    else:
        _out().print(_key_values(values.items()))


@app.command()
def demo(
    data: Annotated[Optional[Path], typer.Option(help="LoCoMo JSON file (env MEMSTRATA_LOCOMO).")] = None,
    db: Annotated[
        Optional[Path], typer.Option("--db", help="Keep the demo database here (default: a temporary one).")
    ] = None,
    budget: Annotated[int, typer.Option(help="Token budget of each memory block.")] = 250,
    questions: Annotated[int, typer.Option(help="How many questions to show.")] = 5,
    sample: Annotated[str, typer.Option(help="LoCoMo conversation to use.")] = "conv-26",
) -> None:
    """Ingest a real LoCoMo conversation, then show the memory block for a few of its questions."""
    from .demo import run_demo

    state = _state()
    with tempfile.TemporaryDirectory(prefix="memstrata-demo-") as tmp:
        # Never the user's own store: MEMSTRATA_DB is ignored here; --db (either place) is honoured.
        target = db or state.db or Path(tmp) / "demo.db"
        with _progress("ingesting") as progress:
            run_demo(
                state.settings(db=target), data, console=_out(), progress=progress, budget=budget,
                questions=questions, sample=sample,
            )


# ---------------------------------------------------------------------- command groups owned elsewhere


def _add_optional_groups() -> None:
    """Add each sub-app in `_OPTIONAL_GROUPS` whose module is installed (bench, serve, ...)."""
    for module_name, attribute, name in _OPTIONAL_GROUPS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # not written yet
            raise
        app.add_typer(getattr(module, attribute), name=name)


_add_optional_groups()


# ---------------------------------------------------------------------- entry point


def exit_code(exc: MemstrataError) -> int:
    """2 bad input or settings, 3 not found, 4 store error, 1 anything else."""
    if isinstance(exc, (InvalidInput, ConfigError)):
        return EXIT_INPUT
    if isinstance(exc, NotFound):
        return EXIT_NOT_FOUND
    if isinstance(exc, StoreError):
        return EXIT_STORE
    return EXIT_ERROR


def _message(exc: MemstrataError) -> str:
    """The error's message, in the CLI's words where the API's would mislead."""
    if isinstance(exc, ScopeRequired):
        return "a scope is required: pass --user ID or --agent ID (or set MEMSTRATA_USER / MEMSTRATA_AGENT)"
    return exc.message


def _fail(message: str, code: int) -> int:
    sys.stderr.write(" ".join(message.split()) + "\n")
    return code


def _is_usage_error(exc: Exception) -> bool:
    """A command-line usage error (typer / click: bad option, missing argument, ...)."""
    return callable(getattr(exc, "format_message", None)) and isinstance(getattr(exc, "exit_code", None), int)


def _usage_message(exc: Exception) -> str:
    """The usage error's text, with a pointer to the command's help."""
    ctx = getattr(exc, "ctx", None)
    hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
    return f"{exc.format_message()}{hint}"  # type: ignore[attr-defined]


def _utf8_safe_streams() -> None:
    """Never crash on a character the terminal's encoding lacks (✓, names, ...)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on `argv` (default: sys.argv) and return the exit code; never raises."""
    _utf8_safe_streams()
    command = typer.main.get_command(app)
    try:
        result = command.main(args=list(argv) if argv is not None else None, prog_name="memstrata", standalone_mode=False)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except typer.Abort as exc:  # Ctrl-C (typer wraps it), or "no" at a confirmation
        if isinstance(exc.__context__, KeyboardInterrupt):
            return _fail("interrupted", EXIT_INTERRUPTED)
        return _fail("aborted", EXIT_ERROR)
    except MemstrataError as exc:
        return _fail(f"error: {_message(exc)}", exit_code(exc))
    except Exception as exc:  # noqa: BLE001 - the one place that turns surprises into one line
        if _is_usage_error(exc):
            if not exc.format_message().strip():  # type: ignore[attr-defined]
                return exc.exit_code  # type: ignore[attr-defined]  # no arguments: the help was shown
            return _fail(f"error: {_usage_message(exc)}", exc.exit_code)  # type: ignore[attr-defined]
        if os.environ.get("MEMSTRATA_DEBUG"):
            traceback.print_exc()
        return _fail(
            f"internal error: {type(exc).__name__}: {exc} (rerun with MEMSTRATA_DEBUG=1 for the traceback)", EXIT_ERROR
        )
    return result if isinstance(result, int) else EXIT_OK


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `memstrata` console script."""
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
