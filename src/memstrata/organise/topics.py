"""L2 topics: session summaries and a two-level tree of topic clusters, built bottom-up from notes.

Offline, summaries are extractive: a few member notes, verbatim, so every line
of a summary is a note that names its episodes. They are chosen for being
central to the topic, saying something (names, dates, content words; not a
question) and differing from each other, and the label names the words that set
the topic apart from the scope's others ("Session of 08 May 2023 (support group,
adoption, counseling)"). With `Settings.summariser = "llm"` the LLM writes the
summary and the title from the topic's most central notes instead (organise.summarise),
falling back to the extractive summary. A topic's `sources` are the notes it shows
(or the LLM read); `member` links point to all of its children (notes, or topics
one level down), which is what tree descent walks.

Idempotent: a topic's identity (`dedup_key`) is the hash of its kind and
member ids; topics whose members changed are replaced, unchanged ones are left
alone, so a second run writes nothing.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any, Sequence

import numpy as np

from ..ids import new_id
from ..model import Record, SearchFilters, Topic, text_hash
from .runner import OrganiseContext
from .summarise import MAX_NOTES as LLM_NOTES
from .summarise import llm_summary

#: Cosine similarity a note needs to join a cluster, and a cluster to join a super-topic.
NOTE_CLUSTER_THRESHOLD = 0.55
TOPIC_CLUSTER_THRESHOLD = 0.5
#: Members shown in a summary.
SUMMARY_NOTES = 3
#: Fewest members a cluster needs to become a topic.
MIN_MEMBERS = 3
#: Distinctive words in a topic's label.
LABEL_WORDS = 3
#: How much similarity to an already chosen summary line costs a candidate (maximal marginal relevance).
REDUNDANCY_PENALTY = 0.8
#: Bumped when the way summaries are written changes, so organise rewrites them once.
SUMMARY_VERSION = "2"


def load_layer(ctx: OrganiseContext, layer: int, kind: str | None = None) -> tuple[list[Record], np.ndarray]:
    """Active records of one layer in the scope, oldest first, with their vectors (rows aligned)."""
    records: list[Record] = []
    cursor = None
    while True:
        page = ctx.store.list(ctx.scope, SearchFilters(layers=[layer]), limit=1000, cursor=cursor)
        records += [r for r in page.items if kind is None or r.kind == kind]
        cursor = page.next_cursor
        if cursor is None:
            break
    vectors = ctx.store.vectors([r.id for r in records], ctx.embedder.name, ctx.scope)
    records = [r for r in records if r.id in vectors]
    matrix = np.stack([vectors[r.id] for r in records]) if records else np.zeros((0, ctx.embedder.dim), np.float32)
    return records, matrix


def leader_clusters(matrix: np.ndarray, threshold: float) -> list[list[int]]:
    """Deterministic single-pass clustering: each row joins the closest centroid above `threshold`."""
    clusters: list[list[int]] = []
    sums: list[np.ndarray] = []
    for i, vec in enumerate(matrix):
        if sums:
            cents = np.stack(sums)
            cents = cents / np.linalg.norm(cents, axis=1, keepdims=True)
            sims = cents @ vec
            best = int(np.argmax(sims))
            if sims[best] >= threshold:
                clusters[best].append(i)
                sums[best] = sums[best] + vec
                continue
        clusters.append([i])
        sums.append(vec.astype(np.float32).copy())
    return clusters


def central(members: Sequence[int], matrix: np.ndarray, k: int) -> list[int]:
    """The `k` members closest to the members' centroid, in their original order."""
    cent = matrix[list(members)].mean(axis=0)
    order = np.argsort(-(matrix[list(members)] @ cent), kind="stable")[:k]
    return sorted(members[i] for i in order)


def informativeness(note: Record, people: set[str]) -> float:
    """How much a note says: content words and names beyond the people of the scope; a question says little."""
    words = {k for k in note.keywords if k not in people}
    named = [e for e in note.entities if e.lower() not in people]
    score = math.log1p(len(words) + 2 * len(named))
    return score * (0.3 if note.kind == "question" else 1.0)


def summary_lines(
    members: Sequence[int], matrix: np.ndarray, notes: Sequence[Record], people: set[str], k: int
) -> list[int]:
    """Up to `k` members that are central, informative and unlike each other, in their original order."""
    idx = list(members)
    cent = matrix[idx].mean(axis=0)
    cent = cent / (np.linalg.norm(cent) or 1.0)
    value = {i: float(matrix[i] @ cent) * informativeness(notes[i], people) for i in idx}
    penalty = REDUNDANCY_PENALTY * max(value.values())
    chosen: list[int] = []
    while idx and len(chosen) < k:
        def gain(i: int) -> float:
            overlap = max((float(matrix[i] @ matrix[j]) for j in chosen), default=0.0)
            return value[i] - penalty * max(0.0, overlap)
        best = max(idx, key=lambda i: (gain(i), -i))
        chosen.append(best)
        idx.remove(best)
    return sorted(chosen)


def distinctive_words(groups: Sequence[Sequence[Record]], people: set[str], k: int) -> list[list[str]]:
    """For each group of notes, the `k` keywords most particular to it (tf-idf over the groups)."""
    counts = [Counter(w for n in g for w in set(n.keywords) if w not in people) for g in groups]
    df = Counter(w for c in counts for w in c)
    out = []
    for c in counts:
        scored = sorted(c, key=lambda w: (-(c[w] * math.log(1 + len(groups) / df[w])), w))
        out.append([w for w in scored if c[w] > 1][:k])
    return out


def _written_by_llm(chat: Any, topic: Topic, title: str, ranked: list[Record], fallback_key: str) -> Topic:
    """`topic` with the LLM's summary of its most central notes (which become its sources); extractive
    when the model fails, under `fallback_key` (the extractive topic's), so the next run asks again."""
    written = llm_summary(chat, ranked)
    if written is None:
        return topic.model_copy(update={"dedup_key": fallback_key})
    read = ranked[:LLM_NOTES]
    return topic.model_copy(update={
        "content": f"{title} ({' '.join(written.title.split())}): {' '.join(written.summary.split())}",
        "sources": [r.id for r in read],
        "entities": sorted({e for r in read for e in r.entities})[:12],
    })


def _by_centrality(members: Sequence[int], matrix: np.ndarray, notes: Sequence[Record]) -> list[Record]:
    """The members' notes, most central first, questions last (what an LLM summary is written from)."""
    idx = list(members)
    cent = matrix[idx].mean(axis=0)
    order = sorted(idx, key=lambda i: (notes[i].kind == "question", -float(matrix[i] @ cent), i))
    return [notes[i] for i in order]


def _label(title: str, words: Sequence[str]) -> str:
    return f"{title} ({', '.join(words)})" if words else title


class TopicStep:
    """Builds session topics and the topic-cluster tree for one scope."""

    name = "topics"

    def run(self, ctx: OrganiseContext) -> dict:
        notes, matrix = load_layer(ctx, 1, kind=None)
        keep = [i for i, n in enumerate(notes) if n.kind != "experience"]
        notes, matrix = [notes[i] for i in keep], matrix[keep]
        existing, _ = load_layer(ctx, 2)
        by_key = {t.dedup_key: t for t in existing}
        wanted: dict[str, Topic] = {}
        members: dict[str, list[str]] = {}

        people = {e.lower() for n in notes for e in n.entities[:1]}  # whose statements the notes are

        mode = "llm" if ctx.llm is not None else "extractive"
        # new topic id -> (title, notes an LLM summary reads, the extractive key it falls back to)
        to_write: dict[str, tuple[str, list[Record], str]] = {}

        def for_llm(idx: list[int]) -> list[Record]:
            """What an LLM summary of these notes reads (nothing without an LLM)."""
            return _by_centrality(idx, matrix, notes) if ctx.llm is not None else []

        def want(kind: str, children: list[Record], shown: list[Record], title: str, words: Sequence[str] = (),
                 ranked: Sequence[Record] = ()) -> Topic:
            """The topic over `children`: the stored one, or a new one summarised by `shown` (an LLM, if
            configured, rewrites it from `ranked` when it is written)."""
            ids = ",".join(sorted(c.id for c in children))
            key = text_hash(f"{kind}:v{SUMMARY_VERSION}:{mode}:{ids}")
            topic = by_key.get(key)
            if topic is None:
                body = " / ".join(" ".join(r.content.split()) for r in shown)
                stamp = ctx.clock()
                topic = Topic(
                    id=new_id("topic"), kind=kind, user_id=ctx.scope.user_id, agent_id=ctx.scope.agent_id,
                    session_id=children[0].session_id if kind == "session" else None,
                    content=f"{_label(title, words)}: {body}", event_time=min(c.event_time for c in children),
                    created_at=stamp, updated_at=stamp, sources=[r.id for r in shown], dedup_key=key,
                    entities=sorted({e for r in shown for e in r.entities})[:12],
                )
                if ranked:
                    to_write[topic.id] = (title, list(ranked), text_hash(f"{kind}:v{SUMMARY_VERSION}:extractive:{ids}"))
            wanted[key] = topic
            members[topic.id] = [c.id for c in children]
            return topic

        # sessions
        by_session: dict[str | None, list[int]] = defaultdict(list)
        for i, n in enumerate(notes):
            if n.session_id:
                by_session[n.session_id].append(i)
        sessions = [idx for idx in by_session.values() if len(idx) >= MIN_MEMBERS]
        session_words = distinctive_words([[notes[i] for i in idx] for idx in sessions], people, LABEL_WORDS)
        for idx, words in zip(sessions, session_words):
            shown = [notes[i] for i in summary_lines(idx, matrix, notes, people, SUMMARY_NOTES)]
            when = min(notes[i].event_time for i in idx)
            want("session", [notes[i] for i in idx], shown, f"Session of {when:%d %B %Y}", words,
                 ranked=for_llm(idx))

        # clusters of notes, then clusters of clusters
        level1: list[tuple[Topic, np.ndarray]] = []
        clusters = [idx for idx in leader_clusters(matrix, NOTE_CLUSTER_THRESHOLD) if len(idx) >= MIN_MEMBERS]
        cluster_words = distinctive_words([[notes[i] for i in idx] for idx in clusters], people, LABEL_WORDS)
        for idx, words in zip(clusters, cluster_words):
            shown = [notes[i] for i in summary_lines(idx, matrix, notes, people, SUMMARY_NOTES)]
            topic = want("cluster", [notes[i] for i in idx], shown, "Topic", words, ranked=for_llm(idx))
            cent = matrix[idx].mean(axis=0)
            level1.append((topic, cent / (np.linalg.norm(cent) or 1.0)))
        if level1:
            cmat = np.stack([c for _, c in level1])
            for idx in leader_clusters(cmat, TOPIC_CLUSTER_THRESHOLD):
                if len(idx) < 2:
                    continue
                children = [level1[i][0] for i in idx]
                shown_notes = ctx.store.get([children[i].sources[0] for i in central(list(range(len(idx))), cmat[idx], SUMMARY_NOTES)], ctx.scope)
                want("theme", children, shown_notes, "Theme")

        return self._write(ctx, existing, wanted, members, to_write)

    def _write(self, ctx: OrganiseContext, existing: list[Record], wanted: dict[str, Topic],
               members: dict[str, list[str]], to_write: dict[str, tuple[str, list[Record], str]]) -> dict:
        existing_ids = {t.id for t in existing}
        new = [t for t in wanted.values() if t.id not in existing_ids]
        budget = ctx.max_work if ctx.max_work is not None else len(new) + len(existing)
        new_now, pending = new[:budget], max(0, len(new) - budget)
        if ctx.llm is not None:  # only the topics written in this run cost a call
            new_now = [_written_by_llm(ctx.llm, t, *to_write[t.id]) if t.id in to_write else t for t in new_now]
            # A topic the model failed on again keeps the extractive stand-in of the last failure.
            standing = {t.dedup_key: t for t in existing}
            for t in [t for t in new_now if t.id in to_write and t.dedup_key in standing]:
                kept = standing[t.dedup_key]
                new_now.remove(t)
                wanted[kept.dedup_key] = kept
                members[kept.id] = members.pop(t.id)
        stale = [t.id for t in existing if t.dedup_key not in wanted]
        if new_now:
            vectors = ctx.embedder.embed([t.embedding_text for t in new_now])
            ctx.store.put(new_now, vectors, ctx.embedder.name, actor="organise")
        removed = ctx.store.delete(stale, ctx.scope) if stale and not pending else 0
        written = {t.id for t in new_now} | (existing_ids & {t.id for t in wanted.values()})
        links = [(tid, m, "member", 1.0) for tid, ms in members.items() if tid in written for m in ms]
        linked = ctx.store.put_links(links)
        return {"created": len(new_now), "removed": removed, "linked": linked, "pending": pending}
