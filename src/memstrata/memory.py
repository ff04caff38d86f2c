"""`Memory`, the public face of memstrata, and `AsyncMemory`, its async twin.

One core (sync); the async class runs the same calls in a worker thread.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

from . import limits
from . import validate as check
from .config import Settings
from .embed import make_embedder
from .embed.base import Embedder
from .embed.cache import CachedEmbedder
from .errors import ConfigError, ContentTooLarge, InvalidInput, NotFound, StoreError
from .ids import new_id
from .model import (
    AddResult,
    ContextBlock,
    Episode,
    ExperienceHit,
    HistoryEvent,
    Page,
    Record,
    Scope,
    SearchFilters,
    SearchHit,
    embedding_text,
)
from .organise import DEFAULT_STEPS, OrganiseContext, OrganiseReport, run_steps
from .organise.lifecycle import reinforced
from .read.pack import excerpted, excerpts, pack, with_turns
from .read.query import lexical_terms
from .read.recipes import Recipe, get_recipe
from .read.search import retrieve
from .store import open_store
from .store.base import Store
from .timeutil import TimeLike, now, to_datetime
from .write.experience import build_experience, check_steps, experience_hit, experiences_ranked
from .write.extract import Extractor, RuleExtractor, default_name
from .write.rederive import rederive_notes
from .write.resolve import Resolution, note_key, resolve

#: What `add` accepts: one text, one message dict, or a list of message dicts / texts.
Messages = Union[str, Mapping[str, Any], Sequence[Union[str, Mapping[str, Any]]]]

_MESSAGE_KEYS = {"role", "content", "name", "speaker", "timestamp", "metadata", "kind"}
#: A note gives way to its whole turn (`Recipe.verbatim_top`) only if the turn takes at most 1/this of the budget.
VERBATIM_SHARE = 5
#: A turn longer than 1/`VERBATIM_SHARE` of the budget, and than this, is shown by an excerpt (`pack.excerpts`);
#: a document always is, cut to that size.
MIN_EXCERPT_TOKENS = 50


def _search_filters(
    time_from: TimeLike | None, time_to: TimeLike | None, filters: Mapping[str, Any] | None,
    layers: Sequence[int] | None, as_of: TimeLike | None, include_archived: bool,
) -> SearchFilters:
    """The checked filters of a search (`InvalidInput` names the argument that is wrong)."""
    out = SearchFilters(
        time_from=check.timestamp(time_from, "time_from"),
        time_to=check.timestamp(time_to, "time_to"),
        metadata=check.metadata_filter(filters),
        layers=list(layers) if layers is not None else None,
        as_of=check.timestamp(as_of, "as_of"),
        include_archived=bool(include_archived),
    )
    if out.time_from and out.time_to and out.time_from > out.time_to:
        raise InvalidInput("time_from is after time_to", field="time_from")
    return out


class Memory:
    """Long-term memory for agents: add what happened, search it, get a context block.

    >>> m = Memory()  # ~/.memstrata/memstrata.db and the bundled embedder
    >>> m.add("I moved to Lisbon last week", user_id="ana")
    >>> m.context("where does Ana live?", user_id="ana", budget_tokens=500).text
    """

    def __init__(
        self,
        db: str | Path | None = None,
        *,
        settings: Settings | None = None,
        store: Store | None = None,
        embedder: Embedder | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings or Settings.load(db=db)
        if db is not None and settings is not None:
            self.settings = self.settings.model_copy(update={"db": Path(db)})
        #: What time it is (an aware datetime): stamps, last access, decay. Inject one to test time.
        self.clock: Callable[[], datetime] = clock or _wall_clock
        self.store: Store = store if store is not None else open_store(
            self.settings, clock=lambda: self._now().timestamp())
        self._embedder_arg = embedder
        self._embedder: CachedEmbedder | None = None
        self._embedder_lock = threading.Lock()
        self._extractor = make_extractor(self.settings)
        self._speakers: dict[tuple[str | None, str | None], list[str]] = {}

    # ------------------------------------------------------------------ plumbing

    @property
    def embedder(self) -> CachedEmbedder:
        """The embedder (loaded on first use), with the store's embedding cache in front."""
        if self._embedder is None:
            with self._embedder_lock:
                if self._embedder is None:
                    inner = self._embedder_arg or make_embedder(self.settings)
                    self._embedder = CachedEmbedder(inner, self.store)
        return self._embedder

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def __enter__(self) -> "Memory":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writes

    def add(
        self,
        messages: Messages,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        timestamp: TimeLike | None = None,
        metadata: Mapping[str, Any] | None = None,
        importance: float | None = None,
    ) -> AddResult:
        """Store messages as L0 episodes (one transaction); searchable as soon as this returns.

        `messages` is a text, a message dict (`role`, `content`, optional `name`/`speaker`,
        `timestamp`, `metadata`, `kind`) or a list of either; a message without a `role` is the user's,
        another `kind` ("document", "event") nobody's turn unless it names one. `timestamp` is when it happened
        (ISO 8601, datetime or epoch seconds; default now); a message's own timestamp wins.
        `importance` (0..1) sets how slowly these memories and the notes drawn from them fade.
        """
        scope = Scope.of(user_id, agent_id, session_id)
        items = _as_message_list(messages)
        call_time = check.timestamp(timestamp, "timestamp")
        call_meta = check.metadata(metadata)
        stamp = self._now()
        weight = _importance(importance, 0.5)
        episodes: list[Episode] = []
        for i, msg in enumerate(items):
            f = f"messages[{i}]"
            unknown = set(msg) - _MESSAGE_KEYS
            if unknown:
                raise InvalidInput(
                    f"{f} has unknown key(s) {sorted(unknown)}; allowed: {sorted(_MESSAGE_KEYS)}", field=f
                )
            content = check.text(msg.get("content"), f"{f}.content")
            event_time = check.timestamp(msg.get("timestamp"), f"{f}.timestamp") or call_time or stamp
            meta = check.metadata({**call_meta, **check.metadata(msg.get("metadata"), f"{f}.metadata")}, f"{f}.metadata")
            kind = check.optional_name(msg.get("kind"), f"{f}.kind") or "message"
            episodes.append(
                Episode(
                    id=new_id("episode"),
                    kind=kind,
                    user_id=scope.user_id,
                    agent_id=scope.agent_id,
                    session_id=scope.session_id,
                    # a message is the user's unless it says otherwise; a document or an event is nobody's turn
                    role=check.optional_name(msg.get("role"), f"{f}.role") or ("user" if kind == "message" else None),
                    speaker=check.optional_name(msg.get("speaker", msg.get("name")), f"{f}.speaker"),
                    content=content,
                    event_time=event_time,
                    created_at=stamp,
                    updated_at=stamp,
                    metadata=meta,
                    importance=weight,
                )
            )
        resolution = self._derive_notes(episodes, scope, stamp)
        if importance is not None:
            for note in resolution.notes:
                note.importance = weight
        records = [*episodes, *resolution.notes]
        vectors = self.embedder.for_scope(scope).embed([r.embedding_text for r in records])
        redirected = self.store.put(
            records, vectors, self.embedder.name, merges=resolution.merges, supersede=resolution.supersede
        )
        notes = [n for n in resolution.notes if n.id not in redirected]
        merged = list(dict.fromkeys([*resolution.merges, *redirected.values()]))
        return AddResult(episodes=episodes, notes=notes, merged=merged)

    def _participants(self, scope: Scope) -> list[str]:
        """Speakers seen in the scope (cached per user/agent; extended as episodes arrive)."""
        key = (scope.user_id, scope.agent_id)
        known = self._speakers.get(key)
        if known is None:
            known = self._speakers[key] = list(self.store.speakers(scope))
        return known

    def _derive_notes(self, episodes: list[Episode], scope: Scope, stamp: datetime) -> Resolution:
        """L1 notes for new episodes, resolved against the notes already stored."""
        if self.settings.extractor == "none":
            return Resolution()
        known = self._participants(scope)
        for e in episodes:
            name = e.speaker or default_name(e)
            if name and name not in known:
                known.append(name)
        drafts = self._extractor.extract(episodes, known)
        existing = self.store.find_by_keys(scope, [note_key(d.content) for d in drafts])
        timelines = self.store.slot_timelines(scope, [d.slot for d in drafts if d.slot])
        return resolve(drafts, scope, existing, stamp, timelines)

    def update(
        self,
        memory_id: str,
        *,
        content: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
    ) -> Record:
        """Change a memory's text and/or metadata; the old text stays in `history()`."""
        scope = Scope.of(user_id, agent_id)
        memory_id = check.record_id(memory_id)
        if content is None and metadata is None:
            raise InvalidInput("update needs content=... or metadata=...", field="content")
        new_content = check.text(content, "content") if content is not None else None
        new_meta = check.metadata(metadata) if metadata is not None else None
        current = self.get(memory_id, user_id=user_id, agent_id=agent_id)
        vector = None
        if new_content is not None:
            vector = self.embedder.for_scope(scope).embed([embedding_text(current.speaker, new_content)])[0]
        updated = self.store.update(
            memory_id, scope, content=new_content, metadata=new_meta, vector=vector,
            model=self.embedder.name if vector is not None else None,
        )
        if new_content is not None and isinstance(updated, Episode):
            # Notes said what the old text said: drop this episode from them and derive afresh.
            self.store.detach(updated.id, scope)
            resolution = self._derive_notes([updated], scope, updated.updated_at)
            if resolution.notes or resolution.merges:
                vectors = self.embedder.for_scope(scope).embed([n.embedding_text for n in resolution.notes])
                self.store.put(
                    resolution.notes, vectors, self.embedder.name, merges=resolution.merges,
                    supersede=resolution.supersede,
                )
        return updated

    def delete(self, memory_id: str, *, user_id: str | None = None, agent_id: str | None = None) -> None:
        """Erase one memory from every table and index. Raises `NotFound` if it is not in the scope."""
        scope = Scope.of(user_id, agent_id)
        memory_id = check.record_id(memory_id)
        if self._erase(scope, [memory_id]) == 0:
            raise NotFound(f"no memory {memory_id!r} in scope {scope.label()}")

    def delete_all(
        self, *, user_id: str | None = None, agent_id: str | None = None, session_id: str | None = None
    ) -> int:
        """Erase every memory in a scope; returns how many were erased."""
        return self._erase(Scope.of(user_id, agent_id, session_id), None)

    def reset(self) -> None:
        """Erase every memory of every scope in this store."""
        self.store.reset()

    # ------------------------------------------------------------------ reads

    def get(self, memory_id: str, *, user_id: str | None = None, agent_id: str | None = None) -> Record:
        """One memory by id; `NotFound` if it does not exist in the scope."""
        scope = Scope.of(user_id, agent_id)
        found = self.store.get([check.record_id(memory_id)], scope)
        if not found:
            raise NotFound(f"no memory {memory_id!r} in scope {scope.label()}")
        return found[0]

    def list(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        layers: Sequence[int] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        """Memories in a scope, oldest first; pass `next_cursor` back for the next page."""
        scope = Scope.of(user_id, agent_id, session_id)
        filters = SearchFilters(layers=list(layers) if layers is not None else None, include_inactive=True)
        return self.store.list(scope, filters, limit=check.limit(limit), cursor=cursor)

    def history(self, memory_id: str, *, user_id: str | None = None, agent_id: str | None = None) -> list[HistoryEvent]:
        """How one memory changed: created, updated, superseded, ... oldest first."""
        return self.store.history(check.record_id(memory_id), Scope.of(user_id, agent_id))

    def search(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        limit: int = 10,
        time_from: TimeLike | None = None,
        time_to: TimeLike | None = None,
        filters: Mapping[str, Any] | None = None,
        layers: Sequence[int] | None = None,
        recipe: str | Recipe | None = None,
        as_of: TimeLike | None = None,
        include_archived: bool = False,
        reinforce: bool = True,
        reference_time: TimeLike | None = None,
    ) -> list[SearchHit]:
        """Memories most relevant to `query` in a scope, best first, with scores and provenance.

        `time_from`/`time_to` bound the event time; `filters` match metadata keys exactly;
        `recipe` names a retrieval strategy (default from settings: "hybrid" = BM25 + dense, fused).
        `layers` (0 episodes, 1 notes, 2 topics, 3 profile) replaces the recipe's own choice of layers.
        `as_of` answers from what was valid then (superseded memories included); the default is now.
        `reference_time` is when the query is asked, for the time it names ("last week", "yesterday"):
        default `as_of`, else now (the memory's clock).
        Archived (faded) memories are left out unless `include_archived`. Returned memories are
        reinforced (they fade more slowly) unless `reinforce=False`.
        """
        scope = Scope.of(user_id, agent_id, session_id)
        query = check.text(query, "query", max_chars=limits.MAX_QUERY_CHARS)
        search_filters = _search_filters(time_from, time_to, filters, layers, as_of, include_archived)
        chosen = get_recipe(recipe, self.settings.recipe)
        reference = check.timestamp(reference_time, "reference_time") or search_filters.as_of or self._now()
        hits = retrieve(
            self.store, self.embedder.inner, query, scope, search_filters, check.limit(limit), chosen,
            participants=self._participants(scope), reference=reference,
        )
        if reinforce:
            self._reinforce([h.record for h in hits], scope)
        return hits

    def context(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        budget_tokens: int = 1000,
        time_from: TimeLike | None = None,
        time_to: TimeLike | None = None,
        filters: Mapping[str, Any] | None = None,
        recipe: str | Recipe | None = None,
        as_of: TimeLike | None = None,
        include_archived: bool = False,
        reinforce: bool = True,
        reference_time: TimeLike | None = None,
    ) -> ContextBlock:
        """A memory block for `query` that fits `budget_tokens` (whitespace tokens), each line citing its source.

        The best hits (the recipe's `verbatim_top`) are shown as the whole turns their notes came from, when
        a turn takes at most 1/`VERBATIM_SHARE` of the budget; turns shown verbatim have their relative times
        resolved. A document, and a turn longer than that (and than `MIN_EXCERPT_TOKENS`), is shown by its
        passage nearest the query, after the passage's heading. The memories the block shows count as used (they
        fade more slowly) unless `reinforce=False`. The other arguments are those of `search`.
        """
        budget = check.limit(budget_tokens, "budget_tokens", maximum=limits.MAX_BUDGET_TOKENS)
        # About one candidate per 10 tokens of budget is enough to fill it with turn-sized memories.
        candidates = min(limits.MAX_LIMIT, max(20, budget // 10))
        hits = self.search(
            query, user_id=user_id, agent_id=agent_id, session_id=session_id, limit=candidates,
            time_from=time_from, time_to=time_to, filters=filters, recipe=recipe, as_of=as_of,
            include_archived=include_archived, reinforce=False, reference_time=reference_time,
        )
        top = get_recipe(recipe, self.settings.recipe).verbatim_top
        wanted = [h.provenance[0] for h in hits[:top] if h.record.layer_value == 1 and len(h.provenance) == 1]
        if wanted:  # the best notes shown as their turns, where the turns pass the same filters
            admitted = _search_filters(time_from, time_to, filters, None, as_of, include_archived)
            turns = [r for r in self.store.get(wanted, Scope.of(user_id, agent_id, session_id))
                     if isinstance(r, Episode) and admitted.admits(r) and not excerpted(r, budget // VERBATIM_SHARE)]
            hits = with_turns(hits, turns, top, max_tokens=budget // VERBATIM_SHARE)
        hits, parts = excerpts(hits, max(budget // VERBATIM_SHARE, MIN_EXCERPT_TOKENS), lexical_terms(query))
        block = pack(query, hits, budget, parts)
        if reinforce:
            used = {line.record_id for line in block.lines}
            self._reinforce([h.record for h in hits if h.id in used], Scope.of(user_id, agent_id))
        return block

    def organise(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        max_work: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[OrganiseReport]:
        """Consolidate: link notes, build topic summaries and the topic tree, refresh profiles, and the
        lifecycle steps. One scope, or (no scope given) every scope. Idempotent; `max_work` bounds the
        records each step writes per scope, and a later run picks up what is left."""
        if max_work is not None:
            check.limit(max_work, "max_work", maximum=10**9)
        scopes = [Scope.of(user_id, agent_id)] if (user_id or agent_id) else self.scopes()
        reports = []
        llm = self._summariser_llm()
        try:
            for scope in scopes:
                ctx = OrganiseContext(self.store, self.embedder.for_scope(scope), scope, self._now, max_work,
                                      settings=self.settings, llm=llm)
                reports.append(run_steps(ctx, DEFAULT_STEPS))
                if progress is not None:
                    progress(len(reports), len(scopes))
        finally:
            if llm is not None:
                llm.close()
        return reports

    def _summariser_llm(self) -> Any:
        """The chat client topic summaries are written with, or None for extractive summaries."""
        return _chat_client(self.settings, "summariser") if self.settings.summariser == "llm" else None

    def _now(self) -> datetime:
        t = self.clock()
        return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)

    def scopes(self) -> list[Scope]:
        """Every (user_id, agent_id) pair the store holds memories for, sorted."""
        return self.store.scopes()

    def stats(self, *, user_id: str | None = None, agent_id: str | None = None) -> dict:
        """Counts per layer and status, and the store's size; for a scope or (no scope) the whole store."""
        scope = Scope.of(user_id, agent_id) if (user_id or agent_id) else None
        return self.store.stats(scope)

    # ---- lifecycle (issue 5)

    def _reinforce(self, records: Iterable[Record], scope: Scope) -> None:
        """Retrieval is use: bring returned records back towards full strength (one UPDATE, best effort)."""
        if self.settings.reinforcement <= 0:
            return
        at = self._now()
        strengths = {r.id: reinforced(r, at, self.settings) for r in records}
        try:
            self.store.touch(strengths, scope, at.timestamp())
        except StoreError:
            pass  # a busy or read-only store must not fail a read; the next retrieval reinforces

    def pin(
        self, memory_id: str, *, pinned: bool = True, user_id: str | None = None, agent_id: str | None = None
    ) -> Record:
        """Pin a memory (it never fades or expires), or unpin it with `pinned=False`."""
        scope = Scope.of(user_id, agent_id)
        record = self.get(memory_id, user_id=user_id, agent_id=agent_id)
        self.store.set_pinned([record.id], scope, bool(pinned), at=self._now().timestamp())
        return self.get(record.id, user_id=user_id, agent_id=agent_id)

    def archive(self, memory_id: str, *, user_id: str | None = None, agent_id: str | None = None) -> Record:
        """Take an active memory out of default search; it stays in the store, `restore` brings it back."""
        scope = Scope.of(user_id, agent_id)
        record = self.get(memory_id, user_id=user_id, agent_id=agent_id)
        if record.status == "superseded":
            raise InvalidInput(f"{record.id} is superseded (already out of default search)", field="id")
        self.store.set_status([record.id], scope, "archived", at=self._now().timestamp(), event="archived",
                              detail={"reason": "api"})
        return self.get(record.id, user_id=user_id, agent_id=agent_id)

    def restore(self, memory_id: str, *, user_id: str | None = None, agent_id: str | None = None) -> Record:
        """Bring an archived (faded, expired or archived) memory back to default search, at full strength."""
        scope = Scope.of(user_id, agent_id)
        record = self.get(memory_id, user_id=user_id, agent_id=agent_id)
        if record.status == "superseded":
            raise InvalidInput(f"{record.id} is superseded, not archived; a newer memory replaced it", field="id")
        self.store.set_status([record.id], scope, "active", at=self._now().timestamp(), event="restored",
                              from_status=("archived",), strength=1.0)
        return self.get(record.id, user_id=user_id, agent_id=agent_id)

    def delete_episode(self, episode_id: str, *, user_id: str | None = None, agent_id: str | None = None) -> None:
        """Erase one L0 episode and everything derived from it (see `delete`); `InvalidInput` if the id
        names a note, topic, profile fact or experience."""
        record = self.get(episode_id, user_id=user_id, agent_id=agent_id)
        if record.layer_value != 0:
            raise InvalidInput(
                f"{record.id} is a {type(record).__name__} (layer {record.layer_value}), not an episode; "
                "use delete() to erase it",
                field="id",
            )
        self.delete(record.id, user_id=user_id, agent_id=agent_id)

    def _erase(self, scope: Scope, ids: Sequence[str] | None) -> int:
        """Delete `ids` (None: the whole scope), then re-derive notes that lost a source but keep others."""
        base = Scope.of(scope.user_id, scope.agent_id)
        if ids is None and scope.session_id is None:
            count, dependants = self.store.delete_scope(scope), []  # everything derived goes with it
        elif ids is None:  # one session: its episodes go; notes other sessions also support stay
            episodes = _scope_ids(self.store, scope, layers=[0])
            dependants = self.store.derived_from(episodes, base)
            count = self.store.delete(episodes, scope)
        else:
            dependants = self.store.derived_from(ids, base)
            count = self.store.delete(ids, scope)
        self._speakers.pop((scope.user_id, scope.agent_id), None)
        if dependants:
            survivors = self.store.get(dependants, base)
            rederive_notes(self.store, self.embedder.for_scope(base), self._extractor, survivors,
                           self._participants(base), self._now())
        if ids is None and scope.session_id is not None:
            count += self.store.delete_scope(scope)  # whatever else the session still holds
        return count

    def vacuum(self) -> None:
        """Rewrite the database file so erased memories' bytes are gone from disk too (slow on big stores)."""
        self.store.vacuum()

    def add_experience(
        self,
        task: str,
        steps: Sequence[Any] | None,
        outcome: str,
        feedback: str | None = None,
        *,
        success: bool | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        timestamp: TimeLike | None = None,
        importance: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Record:
        """Remember how a task went: the trajectory (an episode) and an experience record citing it.

        `steps` are strings or dicts (action, observation, ...); `success` is inferred from the outcome's
        wording when not given. Failed experiences are kept and labelled: they teach what to avoid.
        `organise()` distils a lesson from each; `search_experience` finds them again.
        """
        scope = Scope.of(user_id, agent_id, session_id)
        stamp = self._now()
        event_time = check.timestamp(timestamp, "timestamp") or stamp
        episode, record = build_experience(
            task=check.text(task, "task"), steps=check_steps(steps), outcome=check.text(outcome, "outcome"),
            feedback=check.text(feedback, "feedback") if feedback is not None else None,
            success=success if success is None else bool(success), scope=scope, event_time=event_time,
            stamp=stamp, importance=_importance(importance, 0.5), metadata=check.metadata(metadata),
        )
        check.metadata(record.metadata)  # the trajectory must fit the metadata limit
        check.text(episode.content, "trajectory")
        vectors = self.embedder.for_scope(scope).embed([episode.embedding_text, record.embedding_text])
        self.store.put([episode, record], vectors, self.embedder.name)
        return record

    def search_experience(
        self,
        task: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        limit: int = 5,
        include_failed: bool = True,
        as_of: TimeLike | None = None,
    ) -> list[ExperienceHit]:
        """Past tasks like `task`, best first: what was done, whether it worked, and the lesson drawn."""
        scope = Scope.of(user_id, agent_id)
        task = check.text(task, "task", max_chars=limits.MAX_QUERY_CHARS)
        limit = check.limit(limit)
        # the experiences (task and outcome) and their trajectories (steps, feedback) are both searched
        as_of_time = check.timestamp(as_of, "as_of")
        filters = SearchFilters(layers=[0, 1], kinds=["experience", "trajectory"], as_of=as_of_time)
        found = retrieve(self.store, self.embedder.inner, task, scope, filters, limits.MAX_LIMIT, EXPERIENCE_RECIPE)
        trajectories = [h.id for h in found if h.record.kind == "trajectory"]
        known = {h.id for h in found}
        missed = [i for i in self.store.derived_from(trajectories, scope) if i not in known] if trajectories else []
        hits = experiences_ranked(found, [r for r in self.store.get(missed, scope) if filters.admits(r)])
        if not include_failed:
            hits = [h for h in hits if h.record.metadata.get("experience", {}).get("success") is not False]
        hits = hits[:limit]
        lessons: dict[str, str] = {}
        for rec in self.store.get(self.store.derived_from([h.id for h in hits], scope), scope):
            if rec.kind == "lesson" and rec.status == "active" and rec.sources:
                lessons.setdefault(rec.sources[0], rec.content)
        self._reinforce([h.record for h in hits], scope)
        return [experience_hit(h.record, h.score, lessons.get(h.id)) for h in hits]

    def reembed(
        self,
        embedder: Embedder | None = None,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        batch_size: int = 256,
        progress: Any = None,
    ) -> int:
        """Give every record a vector from the current embedding model (or switch to `embedder` first).

        Only records without a vector under that model are embedded, so it resumes where a killed run
        stopped. Nothing is re-extracted: notes, topics and profile keep their text. Returns how many
        records got a new vector; `progress(done, None)` is called after each batch.
        """
        if embedder is not None:
            with self._embedder_lock:
                self._embedder_arg, self._embedder = embedder, None
        scope = Scope.of(user_id, agent_id) if (user_id or agent_id) else None
        model, done = self.embedder.name, 0
        while True:
            todo = self.store.missing_vectors(model, check.limit(batch_size, "batch_size"), scope)
            if not todo:
                return done
            vectors = self.embedder.embed([text for _, text in todo])
            written = self.store.put_vectors([(i, v) for (i, _), v in zip(todo, vectors)], model)
            done += written
            if progress:
                progress(done, None)
            if written == 0:
                return done


#: How `search_experience` retrieves: lexical and dense over experience records, fused.
EXPERIENCE_RECIPE = Recipe("experience", ("bm25", "dense"))


def _wall_clock() -> datetime:
    return to_datetime(now())


def _importance(value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidInput(f"importance must be a number from 0 to 1, got {value!r}", field="importance")
    return float(value)


def _scope_ids(store: Store, scope: Scope, layers: list[int] | None = None) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = store.list(scope, SearchFilters(include_inactive=True, layers=layers), limit=1000, cursor=cursor)
        ids += [r.id for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return ids


def make_extractor(settings: Settings) -> Extractor:
    """The note extractor the settings ask for."""
    rules = RuleExtractor()
    if settings.extractor != "llm":
        return rules
    from .write.llm_extract import LLMExtractor

    return LLMExtractor(_chat_client(settings, "extractor"), rules, window=settings.extract_window)


def _chat_client(settings: Settings, setting: str) -> Any:
    """The configured LLM's chat client, for the setting (`extractor`, `summariser`) that asks for it."""
    if not (settings.llm_base_url and settings.llm_model):
        raise ConfigError(f"{setting} = 'llm' needs llm_base_url and llm_model "
                          "(MEMSTRATA_LLM_BASE_URL, MEMSTRATA_LLM_MODEL)")
    from .llm.openai_compat import OpenAIChat

    return OpenAIChat(settings.llm_base_url, settings.llm_model, api_key=settings.llm_api_key)


def _as_message_list(messages: Messages) -> list[Mapping[str, Any]]:
    if isinstance(messages, str) or isinstance(messages, Mapping):
        messages = [messages]  # type: ignore[list-item]
    if not isinstance(messages, Sequence):
        raise InvalidInput(
            f"messages must be a string, a message dict or a list of them, got {type(messages).__name__}",
            field="messages",
        )
    if not messages:
        raise InvalidInput("messages is empty; pass at least one message", field="messages")
    if len(messages) > limits.MAX_ITEMS_PER_ADD:
        raise ContentTooLarge(
            f"{len(messages):,} messages in one add; the limit is {limits.MAX_ITEMS_PER_ADD:,} (add in batches)",
            field="messages",
        )
    out: list[Mapping[str, Any]] = []
    for i, msg in enumerate(messages):
        if isinstance(msg, str):
            out.append({"role": "user", "content": msg})
        elif isinstance(msg, Mapping):
            out.append(msg)
        else:
            raise InvalidInput(
                f"messages[{i}] must be a string or a dict with 'content', got {type(msg).__name__}",
                field=f"messages[{i}]",
            )
    return out


class AsyncMemory:
    """`Memory` for asyncio code: the same methods, awaitable; work runs in a worker thread."""

    def __init__(self, db: str | Path | None = None, **kwargs: Any) -> None:
        self.sync = Memory(db, **kwargs)

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def add(self, messages: Messages, **kwargs: Any) -> AddResult:
        """See `Memory.add`."""
        return await self._run(self.sync.add, messages, **kwargs)

    async def search(self, query: str, **kwargs: Any) -> list[SearchHit]:
        """See `Memory.search`."""
        return await self._run(self.sync.search, query, **kwargs)

    async def context(self, query: str, **kwargs: Any) -> ContextBlock:
        """See `Memory.context`."""
        return await self._run(self.sync.context, query, **kwargs)

    async def get(self, memory_id: str, **kwargs: Any) -> Record:
        """See `Memory.get`."""
        return await self._run(self.sync.get, memory_id, **kwargs)

    async def list(self, **kwargs: Any) -> Page:
        """See `Memory.list`."""
        return await self._run(self.sync.list, **kwargs)

    async def update(self, memory_id: str, **kwargs: Any) -> Record:
        """See `Memory.update`."""
        return await self._run(self.sync.update, memory_id, **kwargs)

    async def delete(self, memory_id: str, **kwargs: Any) -> None:
        """See `Memory.delete`."""
        return await self._run(self.sync.delete, memory_id, **kwargs)

    async def delete_all(self, **kwargs: Any) -> int:
        """See `Memory.delete_all`."""
        return await self._run(self.sync.delete_all, **kwargs)

    async def history(self, memory_id: str, **kwargs: Any) -> list[HistoryEvent]:
        """See `Memory.history`."""
        return await self._run(self.sync.history, memory_id, **kwargs)

    async def reset(self) -> None:
        """See `Memory.reset`."""
        return await self._run(self.sync.reset)

    async def scopes(self) -> list[Scope]:
        """See `Memory.scopes`."""
        return await self._run(self.sync.scopes)

    async def stats(self, **kwargs: Any) -> dict:
        """See `Memory.stats`."""
        return await self._run(self.sync.stats, **kwargs)

    async def organise(self, **kwargs: Any) -> list[OrganiseReport]:
        """See `Memory.organise`."""
        return await self._run(self.sync.organise, **kwargs)

    async def pin(self, memory_id: str, **kwargs: Any) -> Record:
        """See `Memory.pin`."""
        return await self._run(self.sync.pin, memory_id, **kwargs)

    async def archive(self, memory_id: str, **kwargs: Any) -> Record:
        """See `Memory.archive`."""
        return await self._run(self.sync.archive, memory_id, **kwargs)

    async def restore(self, memory_id: str, **kwargs: Any) -> Record:
        """See `Memory.restore`."""
        return await self._run(self.sync.restore, memory_id, **kwargs)

    async def delete_episode(self, episode_id: str, **kwargs: Any) -> None:
        """See `Memory.delete_episode`."""
        return await self._run(self.sync.delete_episode, episode_id, **kwargs)

    async def add_experience(self, task: str, steps: Sequence[Any] | None, outcome: str, *args: Any, **kwargs: Any) -> Record:
        """See `Memory.add_experience`."""
        return await self._run(self.sync.add_experience, task, steps, outcome, *args, **kwargs)

    async def search_experience(self, task: str, **kwargs: Any) -> list[ExperienceHit]:
        """See `Memory.search_experience`."""
        return await self._run(self.sync.search_experience, task, **kwargs)

    async def reembed(self, *args: Any, **kwargs: Any) -> int:
        """See `Memory.reembed`."""
        return await self._run(self.sync.reembed, *args, **kwargs)

    async def vacuum(self) -> None:
        """See `Memory.vacuum`."""
        return await self._run(self.sync.vacuum)

    async def close(self) -> None:
        """Close the store."""
        await self._run(self.sync.close)

    async def __aenter__(self) -> "AsyncMemory":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
