"""The strata: extraction (dates, persons), resolution (repeats, contradictions), organise, provenance."""

from __future__ import annotations

import json
import threading
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from memstrata import Memory, Settings
from memstrata.errors import InvalidInput
from memstrata.formats.locomo import load_locomo
from memstrata.ids import kind_of
from memstrata.llm.openai_compat import OpenAIChat
from memstrata.model import ASSISTANT_LABEL, USER_LABEL, Episode, Note, ProfileFact, Scope, SearchHit
from memstrata.read.pack import excerpts, pack, with_turns
from memstrata.text.timeexpr import annotate_times, find_date_range
from memstrata.read.recipes import PRESETS
from memstrata.write.extract import RuleExtractor, entities_of, resolve_persons
from memstrata.write.llm_extract import LLMExtractor
from memstrata.write.slots import slot_of

MON = datetime(2023, 5, 8, 13, 56, tzinfo=timezone.utc)  # a Monday


def ep(text: str, speaker: str = "Caroline", when: datetime = MON, n: int = 1) -> Episode:
    return Episode(id=f"ep_{n}", user_id="u", speaker=speaker, content=text, event_time=when, created_at=when,
                   updated_at=when)


@pytest.mark.parametrize("text,expected", [
    ("I went there yesterday", "yesterday (7 May 2023)"),
    ("the day before yesterday", "(6 May 2023)"),
    ("two days ago we met", "two days ago (6 May 2023)"),
    ("3 weeks ago", "(the week of 17 April 2023)"),
    ("last Friday", "last Friday (5 May 2023)"),
    ("next Friday", "(12 May 2023)"),
    ("last week", "(the week of 1 May 2023)"),
    ("last weekend", "(the weekend of 6 May 2023)"),
    ("next month", "next month (June 2023)"),
    ("last year", "last year (2022)"),
    ("tonight", "tonight (8 May 2023)"),
])
def test_relative_times_become_dates(text, expected):
    assert expected in annotate_times(text, MON)[0]


def test_a_weekend_is_read_from_the_day_it_is_said_on():
    sunday, wednesday = datetime(2023, 5, 14, 10, tzinfo=timezone.utc), datetime(2023, 5, 10, 10, tzinfo=timezone.utc)
    # on a weekend "this weekend" is the current one, "next weekend" the one after, "last weekend" the one before
    assert "this weekend (the weekend of 13 May 2023)" in annotate_times("this weekend", sunday)[0]
    assert "next weekend (the weekend of 20 May 2023)" in annotate_times("next weekend", sunday)[0]
    assert "last weekend (the weekend of 6 May 2023)" in annotate_times("last weekend", sunday)[0]
    # on a weekday "this" and "next weekend" are the coming one
    assert "(the weekend of 13 May 2023)" in annotate_times("this weekend", wednesday)[0]
    assert "(the weekend of 13 May 2023)" in annotate_times("next weekend", wednesday)[0]
    assert "(the weekend of 6 May 2023)" in annotate_times("last weekend", wednesday)[0]


def test_a_bare_weekday_is_dated_by_the_tense_of_its_sentence():
    thursday = datetime(2024, 6, 20, 19, tzinfo=timezone.utc)
    assert "turned 7 on Saturday (15 June 2024)" in annotate_times("Lily turned 7 on Saturday.", thursday)[0]
    assert "On Friday (14 June 2024), I got" in annotate_times("On Friday, I got great news.", thursday)[0]
    assert "on Saturday (22 June 2024)" in annotate_times("I will see you on Saturday.", thursday)[0]
    # no tense to go by, or a present that is a habit: no date
    for text in ("See you on Sunday at the park.", "The shop is closed on Sunday.", "We are meeting on Monday."):
        assert annotate_times(text, thursday)[0] == text


def test_query_time_windows():
    assert find_date_range("What did she do in May 2023?") == (date(2023, 5, 1), date(2023, 5, 31))
    assert find_date_range("on 7 May, 2023") == (date(2023, 5, 7), date(2023, 5, 7))
    assert find_date_range("during 2022") == (date(2022, 1, 1), date(2022, 12, 31))
    assert find_date_range("what happened yesterday", MON) == (date(2023, 5, 7), date(2023, 5, 7))
    assert find_date_range("what does she like") is None
    # numeric dates; days and months without a year are the last ones before the reference time
    assert find_date_range("on 2023-05-07") == find_date_range("on 5/7/2023") == (date(2023, 5, 7), date(2023, 5, 7))
    assert find_date_range("on 15/3/2024") == (date(2024, 3, 15), date(2024, 3, 15))
    assert find_date_range("What did I buy on March 3rd?", MON) == (date(2023, 3, 3), date(2023, 3, 3))
    assert find_date_range("the 20th of May", MON) == (date(2022, 5, 20), date(2022, 5, 20))
    assert find_date_range("What did I do in June?", MON) == (date(2022, 6, 1), date(2022, 6, 30))
    assert find_date_range("in March", MON) == (date(2023, 3, 1), date(2023, 3, 31))
    assert find_date_range("in March") is None and find_date_range("you may 2x it", MON) is None
    # a month or a season is all of its days
    assert find_date_range("what happened last month", MON) == (date(2023, 4, 1), date(2023, 4, 30))
    assert find_date_range("last winter", MON) == (date(2022, 12, 1), date(2023, 2, 28))


def test_persons_resolved_to_names():
    out = resolve_persons("I'm proud of you and my sister loves your painting, I've seen it.", "Caroline", "Melanie")
    assert out == "Caroline is proud of Melanie and Caroline's sister loves Melanie's painting, Caroline has seen it."


def test_rule_extractor_notes():
    drafts = RuleExtractor().extract(
        [ep("Hey Mel! Good to see you!", n=1),
         ep("I went to a LGBTQ support group yesterday and it was so powerful.", n=2),
         ep("Wow, that's cool, Caroline!", speaker="Melanie", n=3),
         ep("I painted that lake sunrise last year. It's special to me.", speaker="Melanie", n=4)],
        ["Caroline", "Melanie"],
    )
    texts = [d.content for d in drafts]
    assert not any("Good to see" in t or "that's cool" in t for t in texts), "small talk makes no note"
    support = next(d for d in drafts if "support group" in d.content)
    assert support.content.startswith("Caroline went to a LGBTQ support group yesterday (7 May 2023)")
    assert support.sources == ["ep_2"] and support.event_time.date() == date(2023, 5, 7)
    assert support.entities[0] == "Caroline" and "LGBTQ" in support.entities
    painted = next(d for d in drafts if "lake sunrise" in d.content)
    assert painted.content == "Melanie painted that lake sunrise last year (2022)." and painted.sources == ["ep_4"]


def test_slots():
    assert slot_of("Ana moved to Porto last week.", ["Ana"]) == "ana|lives_in"
    assert slot_of("Ana: Ana lives in Lisbon", ["Ana"]) == "ana|lives_in"
    assert slot_of("Ana's favourite band is Air", ["Ana"]) == "ana|favorite band"
    assert slot_of("Ana is keen on counseling", ["Ana"]) is None
    assert slot_of("Bob lives in Rome", ["Ana"]) is None
    assert slot_of("Ana's commute is now only 15 minutes.", ["Ana"]) == "ana|commute"
    assert slot_of("Ana's new manager is Priya.", ["Ana"]) == "ana|manager"
    assert slot_of("Ana's sister is a doctor.", ["Ana"]) is None  # not a one-value attribute
    # an update said with "now" before the subject, or as what someone is now
    assert slot_of("Now the user's commute is only 15 minutes by bike.", ["the user"]) == "the user|commute"
    assert slot_of("These days, Ana lives in Rome.", ["Ana"]) == "ana|lives_in"
    assert slot_of("Ana is now a nurse practitioner at Riverside Clinic.", ["Ana"]) == slot_of(
        "Ana works as a nurse at St. Mary's hospital.", ["Ana"]) == "ana|job"
    assert slot_of("Ana is now a mother of two.", ["Ana"]) is None
    assert slot_of("We moved to Portland last week.", ["the user"]) == "the user|lives_in"


def test_notes_drop_discourse_openers_and_keep_short_statements_with_a_slot():
    drafts = RuleExtractor().extract(
        [ep("By the way, my commute is 45 minutes.", n=1), ep("Actually I moved to Porto in May.", n=2),
         ep("So many people came to the opening of the gallery!", n=3), ep("My salary is 40k.", n=4)],
        ["Caroline", "Melanie"],
    )
    texts = [d.content for d in drafts]
    assert "Caroline's commute is 45 minutes." in texts
    assert any(t.startswith("Caroline moved to Porto") for t in texts)
    assert any(t.startswith("Caroline: So many people came") for t in texts)  # "So" before no comma stays
    salary = next(d for d in drafts if "salary" in d.content)  # two content words, kept: it has a slot
    assert salary.slot == "caroline|salary"


def test_repeats_merge_into_one_note_with_every_source(memory: Memory):
    added = [memory.add("I adopted a dog named Biscuit", user_id="ana").ids[0] for _ in range(10)]
    notes = memory.list(user_id="ana", layers=[1]).items
    assert len(notes) == 1 and notes[0].sources == added
    events = [e.event for e in memory.history(notes[0].id, user_id="ana")]
    assert events == ["created"] + ["merged"] * 9


def test_contradiction_supersedes_and_keeps_history(memory: Memory):
    memory.add("I live in Lisbon", user_id="ana", timestamp="2024-01-01")
    memory.add("I moved to Porto last week.", user_id="ana", timestamp="2024-06-01")
    memory.add("I live in Berlin now.", user_id="ana", timestamp="2025-01-01")
    notes = {n.content: n for n in memory.list(user_id="ana", layers=[1]).items}
    lisbon, porto, berlin = (next(n for c, n in notes.items() if city in c) for city in ("Lisbon", "Porto", "Berlin"))
    assert (lisbon.status, porto.status, berlin.status) == ("superseded", "superseded", "active")
    assert lisbon.valid_to == porto.valid_from and porto.valid_to == berlin.valid_from and berlin.valid_to is None
    assert [e.event for e in memory.history(lisbon.id, user_id="ana")] == ["created", "superseded"]
    hits = memory.search("where does ana live?", user_id="ana", layers=[1])
    assert [h.id for h in hits] == [berlin.id], "superseded notes leave default search"
    # told late about an older home: it goes straight into history
    memory.add("I live in Madrid.", user_id="ana", timestamp="2023-01-01")
    madrid = next(n for n in memory.list(user_id="ana", layers=[1]).items if "Madrid" in n.content)
    assert madrid.status == "superseded" and madrid.valid_to == lisbon.valid_from
    assert next(n for n in memory.list(user_id="ana", layers=[1]).items if "Berlin" in n.content).status == "active"
    # told late about a home between Porto and Berlin: it ends where Berlin begins, and Porto ends where it begins
    memory.add("I live in Vienna.", user_id="ana", timestamp="2024-09-01")
    notes = {n.content: n for n in memory.list(user_id="ana", layers=[1]).items}
    vienna, porto2 = (next(n for c, n in notes.items() if city in c) for city in ("Vienna", "Porto"))
    assert vienna.status == "superseded" and vienna.valid_to == berlin.valid_from
    assert porto2.valid_to == vienna.valid_from
    assert [e.event for e in memory.history(porto.id, user_id="ana")] == ["created", "superseded", "superseded"]
    for day, city in [("2023-06-01", "Madrid"), ("2024-03-01", "Lisbon"), ("2024-07-01", "Porto"),
                      ("2024-10-01", "Vienna"), ("2025-06-01", "Berlin")]:
        valid = [h.record.content for h in memory.search("where does ana live?", user_id="ana", layers=[1], as_of=day)]
        assert len(valid) == 1 and city in valid[0], (day, valid)


def test_organise_builds_strata_idempotently_and_every_line_traces_to_an_episode(locomo_path, embedder, tmp_path):
    conv = load_locomo(locomo_path)[0]
    m = Memory(settings=Settings(db=tmp_path / "o.db"), embedder=embedder)
    sessions = sorted({t.session for t in conv.turns})[:4]
    for s in sessions:
        m.add([t.message() for t in conv.turns if t.session == s], user_id="c", session_id=conv.session_id(s))
    first = m.organise(user_id="c")[0]
    assert first.steps["topics"]["created"] >= len(sessions) and first.steps["links"]["linked"] > 0
    assert first.steps["profile"]["created"] > 0 and first.complete
    again = m.organise(user_id="c")[0]
    assert again.changed == 0, again.steps

    episodes = {e.id for e in m.list(user_id="c", layers=[0], limit=1000).items}
    topics = m.list(user_id="c", layers=[2], limit=1000).items
    assert {t.kind for t in topics} >= {"session", "cluster"}
    assert all(kind_of(s) in ("note", "topic") for t in topics for s in t.sources)
    for query in ("What did Caroline research?", "Where did Melanie go camping?", "What is Caroline's identity?",
                  "What did Melanie paint last year?"):
        for recipe in ("hybrid", "strata"):
            block = m.context(query, user_id="c", budget_tokens=400, recipe=recipe)
            assert block.lines and block.tokens <= 400
            for line in block.lines:
                assert line.provenance and set(line.provenance) <= episodes, (recipe, line)
                assert all(p in line.text for p in line.provenance)
    layers = {h.record.layer_value for q in ("camping", "painting", "adoption")
              for h in m.search(q, user_id="c", limit=50, recipe="strata")}
    assert layers >= {0, 1, 2}


def test_organise_bounded_work_finishes_over_several_runs(locomo_path, embedder, tmp_path):
    conv = load_locomo(locomo_path)[0]
    m = Memory(settings=Settings(db=tmp_path / "b.db"), embedder=embedder)
    for s in (1, 2, 3):
        m.add([t.message() for t in conv.turns if t.session == s], user_id="c", session_id=conv.session_id(s))
    runs = 0
    while True:
        report = m.organise(user_id="c", max_work=5)[0]
        runs += 1
        if report.complete:
            break
        assert runs < 200
    assert runs > 1
    unbounded = Memory(settings=Settings(db=tmp_path / "b.db"), embedder=embedder).organise(user_id="c")[0]
    assert unbounded.changed == 0, unbounded.steps


# --------------------------------------------------------------------------- LLM extractor, scripted server


class ScriptedLLM:
    """An OpenAI-compatible /chat/completions server on loopback that replays scripted replies."""

    def __init__(self, replies: list[tuple[int, str]]) -> None:
        self.replies = list(replies)
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                status, text = outer.replies.pop(0) if outer.replies else (500, "script exhausted")
                payload = {"choices": [{"message": {"role": "assistant", "content": text}}],
                           "usage": {"prompt_tokens": 10, "completion_tokens": 5}} if status == 200 else {"error": text}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


TURNS = [ep("I went to a LGBTQ support group yesterday and it was so powerful.", n=1),
         ep("That's great! I painted a lake sunrise last year.", speaker="Melanie", n=2)]


def _extractor(replies):
    server = ScriptedLLM(replies)
    chat = OpenAIChat(server.url, "scripted", max_tries=1)
    return server, LLMExtractor(chat, RuleExtractor(), window=10)


def test_llm_extractor_uses_the_model_and_repairs_once():
    good = json.dumps({"notes": [
        {"text": "Caroline went to an LGBTQ support group on 7 May 2023.", "turns": [1], "date": "2023-05-07",
         "entities": ["LGBTQ support group"]},
        {"text": "Melanie painted a lake sunrise in 2022.", "turns": [2], "date": None, "entities": []},
    ]})
    server, extractor = _extractor([(200, "Sure! here you go: {not json"), (200, good)])
    try:
        drafts = extractor.extract(TURNS, ["Caroline", "Melanie"])
    finally:
        server.close()
    assert [d.content for d in drafts] == ["Caroline went to an LGBTQ support group on 7 May 2023.",
                                           "Melanie painted a lake sunrise in 2022."]
    assert drafts[0].sources == ["ep_1"] and drafts[0].event_time.date() == date(2023, 5, 7)
    assert drafts[0].entities[0] == "Caroline" and drafts[1].sources == ["ep_2"]
    assert extractor.stats == {"llm": 1, "fallback": 0}
    assert len(server.requests) == 2 and "[1] (2023-05-08) Caroline:" in server.requests[0]["messages"][1]["content"]
    assert "not valid" in server.requests[1]["messages"][-1]["content"]


@pytest.mark.parametrize("replies", [
    [(200, json.dumps({"notes": [{"text": "Nobody said this.", "turns": [7]}]}))],  # cites a turn not shown
    [(200, "nope"), (200, "still nope")],  # malformed twice
    [(500, "boom")],  # server error
])
def test_llm_extractor_falls_back_to_rules(replies):
    server, extractor = _extractor(replies)
    try:
        drafts = extractor.extract(TURNS, ["Caroline", "Melanie"])
    finally:
        server.close()
    assert extractor.stats == {"llm": 0, "fallback": 1}
    assert drafts == RuleExtractor().extract(TURNS, ["Caroline", "Melanie"])


def test_memory_with_llm_extractor_end_to_end(tmp_path, embedder):
    reply = json.dumps({"notes": [{"text": "Ana adopted a dog named Biscuit in March 2024.", "turns": [1],
                                   "date": "2024-03-10", "entities": ["Biscuit"]}]})
    server = ScriptedLLM([(200, reply)])
    try:
        settings = Settings(db=tmp_path / "l.db", extractor="llm", llm_base_url=server.url, llm_model="scripted")
        m = Memory(settings=settings, embedder=embedder)
        result = m.add([{"speaker": "Ana", "content": "We finally adopted Biscuit, a tiny terrier!"}], user_id="ana")
    finally:
        server.close()
    assert [n.content for n in result.notes] == ["Ana adopted a dog named Biscuit in March 2024."]
    assert result.notes[0].sources == result.ids
    assert m.search("Which dog did Ana adopt?", user_id="ana", limit=1)[0].provenance == result.ids


def test_organise_a_scope_of_only_experiences(memory: Memory):
    for i in range(3):
        memory.add_experience(f"deploy service {i}", steps=["build", "push"], outcome="failed: timeout",
                              user_id="u", session_id="s")
    report = memory.organise(user_id="u")[0]
    assert report.complete and report.steps["topics"]["created"] == 0


def test_adjacent_turns_join_below_their_seed(memory: Memory):
    turns = [
        {"speaker": "Melanie", "content": "What did you look into after the support group meeting?"},
        {"speaker": "Caroline", "content": "Adoption agencies near Boston, it has been a dream for years."},
        {"speaker": "Melanie", "content": "I baked bread with the kids on Sunday afternoon."},
    ]
    ids = memory.add(turns, user_id="c", session_id="s1").ids
    hits = memory.search("What did Caroline look into after the support group meeting?", user_id="c", limit=20)
    by_id = {h.id: h for h in hits}
    assert ids[0] in by_id
    neighbour = by_id.get(ids[1])
    assert neighbour is not None and neighbour.score <= max(h.score for h in hits)
    adjacent_only = [h for h in hits if set(h.ranks) == {"adjacent"}]
    for h in adjacent_only:  # brought in by adjacency alone: below the best hit
        assert h.score < hits[0].score
    assert any("adjacent" in h.ranks for h in hits)
    plain = memory.search("What did Caroline look into after the support group meeting?", user_id="c", limit=20,
                          recipe="no-adjacent")
    assert not any("adjacent" in h.ranks for h in plain)


def test_lexical_terms_leave_out_the_participants_a_query_names():
    from memstrata.read.query import analyse

    plan = analyse("What does Caroline think of Melanie's pottery?", ["Caroline", "Melanie"])
    assert plan.persons == ["Caroline", "Melanie"]
    assert "caroline" in plan.terms and "pottery" in plan.terms
    assert plan.topic_terms() == ["think", "pottery"]
    # a query of nothing but a name keeps it: something must be matched
    assert analyse("Caroline?", ["Caroline"]).topic_terms() == ["caroline"]
    # a name that is not a participant is a topic like any other
    assert "gina" in analyse("Who is Gina?", ["Caroline"]).topic_terms()


def test_participant_names_only_rescore_and_questions_rank_below_statements(memory: Memory):
    turns = [
        {"speaker": "Caroline", "content": "Melanie, what kind of pottery do you like to make these days?"},
        {"speaker": "Melanie", "content": "I make big blue pottery bowls in my Tuesday class."},
        {"speaker": "Caroline", "content": "Caroline says Caroline loves Caroline's garden, Melanie, Melanie!"},
    ]
    ids = memory.add(turns, user_id="c", session_id="s1").ids
    query = "What pottery does Melanie make?"
    notes = [h for h in memory.search(query, user_id="c", limit=20, layers=[1])]
    statement = next(h for h in notes if h.provenance == [ids[1]])
    question = next(h for h in notes if h.provenance == [ids[0]])
    assert statement.score > question.score
    assert "bm25" not in next((h.ranks for h in notes if h.provenance == [ids[2]]), {})  # "Melanie" alone matches nothing
    plain = memory.search(query, user_id="c", limit=20, layers=[1], recipe="match-names")
    assert "bm25" in next(h.ranks for h in plain if h.provenance == [ids[2]])
    unweighted = {h.id: h.score for h in memory.search(query, user_id="c", limit=20, layers=[1],
                                                       recipe="no-question-weight")}
    assert question.score < unweighted[question.id]


def test_pronoun_resolution_keeps_the_verb_in_agreement():
    assert resolve_persons("I really love it and I try hard.", "Ana", "Ben") == "Ana really loves it and Ana tries hard."
    assert resolve_persons("I do yoga, I went out and I miss you.", "Ana", "Ben") == (
        "Ana does yoga, Ana went out and Ana misses Ben.")
    assert resolve_persons("Can I help? Did I say that?", "Ana", "Ben") == "Can Ana help? Did Ana say that?"
    assert resolve_persons("i love it, i'm sure, i.e. yes", "Ana", "Ben") == "Ana loves it, Ana is sure, i.e. yes"


def test_the_verbs_of_a_resolved_you_and_of_questions_agree_too():
    assert resolve_persons("What do you think? Are you coming? Have you seen it?", "Ana", "Ben") == (
        "What does Ben think? Is Ben coming? Has Ben seen it?")
    assert resolve_persons("I don't surf, but I haven't tried. You were great.", "Ana", "Ben") == (
        "Ana doesn't surf, but Ana hasn't tried. Ben was great.")
    assert resolve_persons("Let me know what you think after you read it.", "Ana", "Ben") == (
        "Let Ana know what Ben thinks after Ben reads it.")
    # after a causative, a perception verb or a modal, "you" is an object or the verb keeps its form
    assert resolve_persons("It made you feel welcome; I saw you dance; can you help?", "Ana", "Ben") == (
        "It made Ben feel welcome; Ana saw Ben dance; can Ben help?")
    assert resolve_persons("Don’t you love it?", "Ana", "Ben") == "Doesn’t Ben love it?"
    assert resolve_persons("I suggest staying in Gion; you deserve a rest.", "Ana", "Ben") == (
        "Ana suggests staying in Gion; Ben deserves a rest.")


def test_he_or_she_after_my_sister_ana_is_ana():
    drafts = RuleExtractor().extract(
        [ep("My wife Sarah is a teacher. She loves gardening and grows tomatoes.", speaker="Ana", n=1),
         ep("My son Leo started school. She took him there in the old blue car.", speaker="Ana", n=2),
         ep("My brother Tom and my sister Eva came over. He brought a bottle of Douro wine.", speaker="Ana", n=3),
         ep("My friend Kim lives in Oslo. My kids Mia and Leo visited. She's been kind to them.", speaker="Ana", n=4),
         ep("Our neighbour Rui paints. He's been painting the old harbour of Porto.", speaker="Ana", n=5)],
        ["Ana", "Ben"],
    )
    texts = [d.content for d in drafts]
    assert "Ana: Sarah loves gardening and grows tomatoes." in texts, texts
    assert any(t.startswith("Ana: She took him") for t in texts), "she is not the son"
    assert any(t.startswith("Ana: He brought") for t in texts), "two were introduced: he stays he"
    assert "Ana: Rui has been painting the old harbour of Porto." in texts, texts
    # a relation without a name is who "she" or "her" is too, as the speaker's
    drafts = RuleExtractor().extract(
        [ep("What is a good gift for my mom? Her birthday is on March 3rd and she loves gardening.", speaker="Ana", n=6),
         ep("My brother is visiting. He's been working in Berlin for a year.", speaker="Ana", n=7)], ["Ana", "Ben"])
    texts = [d.content for d in drafts]
    assert "Ana's mom's birthday is on March 3rd and she loves gardening." in texts, texts
    assert "Ana's brother has been working in Berlin for a year." in texts, texts


def test_a_shared_photo_is_a_statement_of_its_own():
    from memstrata.write.extract import split_sentences

    assert split_sentences("We made a bowl. It is blue and shiny! [shares a photo: a clay bowl]") == [
        "We made a bowl.", "It is blue and shiny!", "[shares a photo: a clay bowl]"]


def test_list_items_and_paragraphs_are_statements_of_their_own():
    from memstrata.write.extract import split_sentences

    answer = ("Here is a plan for your 10k:\n\n1. Run 3 times a week: Monday, Wednesday and Saturday.\n"
              "2. Keep the Saturday run long.\n- Stretch after each run\n\n**Note:** add no more than 10% a week.")
    assert split_sentences(answer) == [
        "Here is a plan for your 10k:", "Run 3 times a week: Monday, Wednesday and Saturday.",
        "Keep the Saturday run long.", "Stretch after each run", "Note: add no more than 10% a week."]
    assert split_sentences("Shopping list:\n- milk\n- eggs\n\n## Later\nCall mom.") == [
        "Shopping list: milk, eggs", "Later", "Call mom."]
    assert split_sentences("A line that wraps\nonto the next one. Then another one follows.") == [
        "A line that wraps onto the next one.", "Then another one follows."]


def test_an_abbreviation_or_an_initial_ends_no_sentence():
    from memstrata.write.extract import split_sentences

    assert split_sentences("I work at St. Mary's hospital with Dr. Lee. It is far from home.") == [
        "I work at St. Mary's hospital with Dr. Lee.", "It is far from home."]
    assert split_sentences("I am reading C. S. Lewis again. J. K. Rowling is next on my list.") == [
        "I am reading C. S. Lewis again.", "J. K. Rowling is next on my list."]
    assert split_sentences("We toured the U.S. Capitol in May. I got an A. It was a great test.") == [
        "We toured the U.S. Capitol in May.", "I got an A.", "It was a great test."]


def test_adjacent_turns_follow_the_session_order_not_the_insert_order(memory: Memory):
    """One turn per add interleaves each turn's notes with the turns; neighbours are still the turns
    before and after in the session, and another session's turns never are."""
    said = ["I adopted a grey cat named Pixel last spring.", "Pixel sleeps on my keyboard every single day.",
            "My sister Marta visits us in Lisbon next month.", "We will cook bacalhau together for the family."]
    ids = [memory.add({"speaker": "Ana", "content": text}, user_id="a", session_id="s1").ids[0] for text in said]
    other = memory.add({"speaker": "Ana", "content": "Rain again over the old harbour today."}, user_id="a",
                       session_id="s2").ids[0]
    assert len(memory.list(user_id="a", layers=[1]).items) >= 4  # notes sit between the turns
    near = memory.store.adjacent([ids[1], ids[3], other], Scope(user_id="a"), width=1)
    assert set(near[ids[1]]) == {ids[0], ids[2]}
    assert near[ids[3]] == [ids[2]]
    assert near[other] == []
    wide = memory.store.adjacent([ids[0]], Scope(user_id="a"), width=2)[ids[0]]
    assert wide == [ids[1], ids[2]]
    assert memory.store.adjacent([ids[0]], Scope(user_id="b")) == {}  # another user's turns are not theirs


def test_session_summaries_say_something_and_name_what_sets_them_apart(memory: Memory):
    sessions = {
        "s1": ["What did you think of the sailing trip to Cascais?", "I loved the sailing trip to Cascais with Marta.",
               "I loved the sailing trip so much, sailing is great.", "I really loved that sailing trip to Cascais.",
               "Loved the sailing trip to Cascais, Marta was great company.",
               "The regatta in Cascais starts at nine on Sunday.",
               "My sister Marta bought a new sailing boat called Gaivota."],
        "s2": ["Are you still baking sourdough bread every weekend?", "I bake sourdough bread every Saturday morning.",
               "The sourdough starter is called Bubbles and it is five years old.",
               "My bakery course in Porto finishes in March."],
    }
    for session, turns in sessions.items():
        memory.add([{"speaker": "Ana", "content": t} for t in turns], user_id="ana", session_id=session)
    memory.organise(user_id="ana")
    topics = [t for t in memory.list(user_id="ana", layers=[2]).items if t.kind == "session"]
    assert len(topics) == 2
    sailing = next(t for t in topics if "Cascais" in t.content)
    label, body = sailing.content.split(": ", 1)
    assert "sailing" in label and "sourdough" not in label  # words of this session, not of every session
    assert "?" not in body  # a question says less than the statements beside it
    shown = memory.store.get(sailing.sources, Scope(user_id="ana"))
    assert len(shown) == 3 and len({n.content for n in shown}) == 3
    assert sum("sailing trip" in n.content for n in shown) == 1  # near-repeats are not shown twice


def test_llm_written_topic_summaries_fall_back_to_extractive(tmp_path, embedder):
    sailing = json.dumps({"title": "Sailing in Cascais",
                          "summary": "Ana loved a sailing trip to Cascais with her sister Marta, who bought a boat."})
    other = json.dumps({"title": "Other things", "summary": "Ana talked about several other things that week."})
    # session 1 gets a summary; session 2's answer is not JSON twice (the repair fails too); clusters after that
    server = ScriptedLLM([(200, sailing), (200, "not json"), (200, "still not json")] + [(200, other)] * 12)
    try:
        settings = Settings(db=tmp_path / "s.db", summariser="llm", llm_base_url=server.url, llm_model="scripted")
        m = Memory(settings=settings, embedder=embedder)
        said = {"s1": ["I loved the sailing trip to Cascais with Marta.", "My sister Marta bought a sailing boat.",
                       "The regatta in Cascais starts at nine on Sunday."],
                "s2": ["I bake sourdough bread every Saturday morning.", "The sourdough starter is called Bubbles.",
                       "My bakery course in Porto finishes in March."]}
        ids = {s: m.add([{"speaker": "Ana", "content": t} for t in turns], user_id="ana", session_id=s).ids
               for s, turns in said.items()}
        m.organise(user_id="ana")
        calls = len(server.requests)

        def sessions() -> dict:
            return {t.session_id: t for t in m.list(user_id="ana", layers=[2]).items if t.kind == "session"}

        assert "1. (" in server.requests[0]["messages"][1]["content"]  # numbered, dated notes
        written, fallback = sessions()["s1"], sessions()["s2"]
        assert written.content.endswith("(Sailing in Cascais): Ana loved a sailing trip to Cascais with her sister "
                                        "Marta, who bought a boat.")
        hit = next(h for h in m.search("sailing trip Cascais", user_id="ana", layers=[2], limit=10) if h.id == written.id)
        assert set(hit.provenance) <= set(ids["s1"]) and hit.provenance  # the summary cites the notes it read
        assert "sourdough" in fallback.content and " / " in fallback.content  # extractive: the model failed

        # The next run asks again for that topic only; failing again, the extractive stand-in stays as it was.
        server.replies[:] = [(200, "no"), (200, "still no")]
        assert m.organise(user_id="ana")[0].changed == 0 and len(server.requests) == calls + 2
        again = sessions()["s2"]
        assert (again.id, again.content, again.updated_at) == (fallback.id, fallback.content, fallback.updated_at)
        # Once the model answers, its summary replaces the stand-in; then nothing is asked again.
        server.replies[:] = [(200, json.dumps({"title": "Baking sourdough", "summary":
                                               "Ana bakes sourdough every Saturday with a starter called Bubbles."}))]
        m.organise(user_id="ana")
        assert len(server.requests) == calls + 3
        retried = sessions()["s2"]
        assert retried.id != fallback.id and retried.content.endswith("starter called Bubbles.")
        assert fallback.id not in {t.id for t in m.list(user_id="ana", layers=[2]).items}
        assert set(m.search("sourdough Bubbles", user_id="ana", layers=[2], limit=10)[0].provenance) <= set(ids["s2"])
        calls = len(server.requests)
        assert m.organise(user_id="ana")[0].changed == 0 and len(server.requests) == calls  # no call for what exists
    finally:
        server.close()


def test_llm_summaries_need_an_llm(tmp_path, embedder):
    from memstrata.errors import ConfigError

    m = Memory(settings=Settings(db=tmp_path / "n.db", summariser="llm"), embedder=embedder)
    m.add("I bake bread every Saturday.", user_id="ana")
    with pytest.raises(ConfigError, match="llm_base_url"):
        m.organise(user_id="ana")


def test_unnamed_user_and_assistant_turns_are_about_the_user_and_the_assistant(memory: Memory):
    """Chats that name no speaker (the usual assistant chat) make notes about "the user", never about
    the user's id, and a later move supersedes the earlier home through the slot."""
    when = datetime(2024, 3, 10, 10, tzinfo=timezone.utc)
    memory.add([{"role": "user", "content": "I live in Porto and my sister Marta visits me every May."},
                {"role": "assistant", "content": "How do you like the flat in Porto so far?"}], user_id="u-8812", timestamp=when)
    memory.add([{"role": "user", "content": "I just moved to Lisbon."}], user_id="u-8812",
               timestamp=datetime(2024, 6, 1, tzinfo=timezone.utc))
    notes = {n.content: n for n in memory.list(user_id="u-8812", layers=[1], limit=50).items}
    assert not any("u-8812" in text for text in notes), list(notes)
    sister = next(n for t, n in notes.items() if "Marta" in t)
    assert sister.content == "The user lives in Porto and the user's sister Marta visits the user every May."
    assert sister.entities[0] == "the user"
    assert "The assistant: How does the user like the flat in Porto so far?" in notes
    moved = notes["The user just moved to Lisbon."]
    assert moved.slot == "the user|lives_in" and sister.slot == "the user|lives_in"
    current = {n.content for n in memory.list(user_id="u-8812", layers=[1], limit=50).items if n.valid_to is None}
    assert "The user just moved to Lisbon." in current and sister.content not in current
    block = memory.context("Where do I live now?", user_id="u-8812", budget_tokens=60)
    assert "The user: I just moved to Lisbon." in block.text, block.text  # a turn shown whole names its speaker


def test_a_first_person_query_is_about_the_user_and_its_time_is_relative_to_when_it_is_asked(memory: Memory):
    """"I" in a query is the user (the user's memories rank above the assistant's), and "last week"
    is the week before `reference_time`, so the same question asked later finds the later hike."""
    def at(day: int) -> datetime:
        return datetime(2024, 4, day, 18, tzinfo=timezone.utc)

    memory.add([{"role": "user", "content": "I went hiking in Sintra with my colleague Joao."}], user_id="u", timestamp=at(3))
    memory.add([{"role": "user", "content": "I went hiking in Arrabida with my neighbour Rui."}], user_id="u", timestamp=at(17))
    memory.add([{"role": "assistant", "content": "Hiking in Gerês is lovely in spring; you should go hiking there."}],
               user_id="u", timestamp=at(17))
    question = "Where did I go hiking last week?"
    early = memory.search(question, user_id="u", reference_time=at(10), limit=3)
    late = memory.search(question, user_id="u", reference_time=at(24), limit=3)
    assert "Sintra" in early[0].record.content and "Arrabida" in late[0].record.content
    assert all("Gerês" not in h.record.content for h in late[:2])  # the user's hikes before the assistant's tip
    block = memory.context(question, user_id="u", reference_time="2024-04-10T09:00:00Z", budget_tokens=30)
    assert "Sintra" in block.text and "Arrabida" not in block.text
    with pytest.raises(InvalidInput, match="reference_time"):
        memory.search(question, user_id="u", reference_time="not a time")


def test_a_query_that_says_what_you_did_is_about_the_assistant_too(memory: Memory):
    """"you" in a query is the assistant (its suggestion ranks with the user's own words), unless it only
    frames a request ("Can you tell me ...")."""
    from memstrata.read.query import analyse

    def at(day: int) -> datetime:
        return datetime(2024, 4, day, 18, tzinfo=timezone.utc)

    memory.add([{"role": "user", "content": "I want to cook something light for my dinner tonight."},
                {"role": "assistant", "content": "For a light dinner, try a lemon and herb grilled fish with salad."}],
               user_id="u", timestamp=at(3))
    memory.add([{"role": "user", "content": "I had a heavy pasta dinner with my brother yesterday."}], user_id="u", timestamp=at(5))
    memory.add([{"role": "user", "content": "My dinner tonight is a light vegetable soup."}], user_id="u", timestamp=at(6))
    hits = memory.search("What did you suggest for my light dinner?", user_id="u", limit=3, reinforce=False)
    assert any("grilled fish" in h.record.content for h in hits), [h.record.content for h in hits]
    assert analyse("What did you suggest for my light dinner?", []).persons == [USER_LABEL, ASSISTANT_LABEL]
    assert analyse("Can you tell me what I had for dinner?", []).persons == [USER_LABEL]
    assert analyse("Do you remember what you said about Porto?", []).persons == [ASSISTANT_LABEL]


def test_a_turn_whose_notes_were_all_superseded_ranks_as_out_of_date(memory: Memory):
    """"I live in Lisbon" stays stored, but once "I moved to Porto" closed its note it scores as out
    of date (the recipe's stale weight), except when asked as of a time it still held."""
    old = memory.add("I live in Lisbon", user_id="ana", timestamp="2024-01-01").episodes[0]
    memory.add("I moved to Porto", user_id="ana", timestamp="2024-04-10")
    memory.add("I love the light in Lisbon", user_id="ana", timestamp="2024-05-01")  # a note still standing

    def score(**kw) -> float:
        hits = memory.search("where does Ana live? Lisbon", user_id="ana", limit=10, reinforce=False, **kw)
        return next(h.score for h in hits if h.id == old.id)

    stale, fresh = score(), score(recipe="no-stale")
    assert stale == pytest.approx(fresh * PRESETS["hybrid"].stale_weight) and stale < fresh
    assert score(as_of="2024-02-01") == pytest.approx(score(as_of="2024-02-01", recipe="no-stale"))
    turns = [t.id for t in memory.list(user_id="ana", layers=[0]).items]
    assert memory.store.outdated_sources(turns, Scope(user_id="ana"), datetime.now(timezone.utc).timestamp()) == {old.id}


def test_short_self_descriptions_are_notes_and_reactions_are_not():
    """"I'm vegetarian" has one content word but says who the speaker is; "I'm so excited!" reacts."""
    texts = ["I'm vegetarian.", "My daughter is 5.", "I hate cilantro.", "I work remotely.",
             "I'm so excited!", "It really mattered.", "I love it."]
    for speaker, subject in (("Caroline", "Caroline"), (None, "The user")):
        episodes = [Episode(id=f"ep_{i}", user_id="u", role="user", speaker=speaker, content=t, event_time=MON,
                            created_at=MON, updated_at=MON) for i, t in enumerate(texts)]
        got = {d.sources[0]: d.content for d in RuleExtractor().extract(episodes, [speaker or "the user", "Mel"])}
        assert got == {"ep_0": f"{subject} is vegetarian.", "ep_1": f"{subject}'s daughter is 5.",
                       "ep_2": f"{subject} hates cilantro.", "ep_3": f"{subject} works remotely."}


def test_the_best_notes_are_shown_as_their_whole_turns_with_times_made_absolute(memory: Memory):
    """A note is one sentence of a turn; the best hits of a block show the turn it came from, and a
    turn shown verbatim carries its relative times resolved ("yesterday (7 May 2023)")."""
    turn = memory.add([{"role": "user", "name": "Caroline", "content":
                        "I went to the pottery class yesterday. We made bowls out of red clay and glazed them blue. "
                        "Then we had lunch at the market and walked home along the river. "
                        "The teacher is called Mrs. Okafor."}], user_id="c", timestamp=MON).episodes[0]
    memory.add([{"role": "user", "name": "Caroline", "content": "Melanie painted a lake sunrise last year."}],
               user_id="c", timestamp=MON)
    question = "What is the teacher called?"
    plain = memory.context(question, user_id="c", budget_tokens=200, recipe="no-verbatim", reinforce=False)
    assert "Mrs. Okafor" in plain.text
    assert all(line.layer == 1 for line in plain.lines if turn.id in line.provenance)  # its sentences, as notes
    block = memory.context(question, user_id="c", budget_tokens=200, reinforce=False)
    shown = [line for line in block.lines if line.provenance == [turn.id]]
    assert [line.record_id for line in shown] == [turn.id]  # the turn once, verbatim, and none of its notes
    assert "Mrs. Okafor" in shown[0].text and "red clay" in shown[0].text
    assert "yesterday (7 May 2023)" in shown[0].text
    # a turn the filters leave out is not brought in: the note dated 7 May stays, the turn of 8 May stays out
    before = memory.context("Where did Caroline go yesterday?", user_id="c", budget_tokens=200,
                            time_to="2023-05-07T23:59:59Z", reinforce=False)
    assert "pottery class" in before.text and turn.id not in [line.record_id for line in before.lines]


def test_a_long_turn_does_not_take_its_notes_place():
    """An essay-length turn (a document chunk, a long assistant answer) stays represented by its note."""
    def turn(n: int, words: int) -> Episode:
        return Episode(id=f"ep_{n}", user_id="u", speaker="Ana", content=" ".join(["word"] * words), event_time=MON,
                       created_at=MON, updated_at=MON)

    def note(n: int) -> SearchHit:
        rec = Note(id=f"nt_{n}", user_id="u", content=f"Ana said thing {n}.", event_time=MON, created_at=MON,
                   updated_at=MON, sources=[f"ep_{n}"])
        return SearchHit(record=rec, score=1.0 / n, provenance=[f"ep_{n}"])

    hits = [note(1), note(2), note(3)]
    out = with_turns(hits, [turn(1, 30), turn(2, 300), turn(3, 10)], top=2, max_tokens=100)
    assert [h.record.id for h in out] == ["ep_1", "nt_2", "nt_3"]  # 2: too long; 3: beyond the top two


def test_a_profile_fact_restating_its_note_is_not_packed_twice():
    """Layers mix without duplication: the profile fact drawn from a note says what the note says."""
    def hit(rec, score: float, turn: str = "ep_1") -> SearchHit:
        return SearchHit(record=rec, score=score, provenance=[turn])

    said = dict(user_id="u", content="Ana is a nurse.", event_time=MON, created_at=MON, updated_at=MON)
    note = Note(id="nt_1", sources=["ep_1"], **said)
    fact = ProfileFact(id="pf_1", kind="identity", sources=["nt_1"], **said)
    other = Note(id="nt_2", sources=["ep_2"], **{**said, "content": "Ana works nights."})
    block = pack("What does Ana do?", [hit(note, 1.0), hit(fact, 0.9), hit(other, 0.8, "ep_2")], budget_tokens=100)
    assert [line.record_id for line in block.lines] == ["nt_1", "nt_2"]
    assert block.text.count("Ana is a nurse.") == 1
    # the same statement on another day is another event, and is kept
    again = Note(id="nt_3", sources=["ep_3"], **{**said, "event_time": MON + timedelta(days=7)})
    block = pack("What does Ana do?", [hit(note, 1.0), hit(again, 0.9, "ep_3")], budget_tokens=100)
    assert block.text.count("Ana is a nurse.") == 2


def test_a_sentence_opening_verb_is_not_part_of_an_entity():
    assert entities_of("Visit Lisbon Oceanarium with Marta.", []) == ["Lisbon Oceanarium", "Marta"]
    assert entities_of("Caroline met Harry Potter fans in London.", ["Caroline"]) == ["Caroline", "Harry Potter", "London"]


def test_a_number_inside_a_name_is_part_of_it():
    assert entities_of("We ate at Ao 26 Vegan Food Project.", []) == ["Ao 26 Vegan Food Project"]
    assert entities_of("Then I met Ana 3 times in Lisbon.", []) == ["Ana", "Lisbon"]
    assert entities_of("Back in May 2023 Ana moved to Porto.", []) == ["May", "Ana", "Porto"]


def test_a_question_tail_opener_or_adverb_leaves_the_statement_and_its_slot(memory: Memory):
    """"I moved to Austin last week. Any tips?" states a move (the ask is dropped, not made the note's end);
    "Oh and", "Big news:" and "now" between "I" and its verb leave the slot rules something to match, and
    "My partner and I moved" is the user's move."""
    def at(month: int) -> datetime:
        return datetime(2024, month, 1, 12, tzinfo=timezone.utc)

    memory.add([{"role": "user", "content": "I live in Denver, so altitude is a thing."}], user_id="u", timestamp=at(1))
    memory.add([{"role": "user", "content": "I moved to Austin last week. Any tips?"}], user_id="u", timestamp=at(3))
    memory.add([{"role": "user", "content": "I work at Brightline as a designer."}], user_id="u", timestamp=at(1))
    memory.add([{"role": "user", "content": "Big news: I now work at Northwind!"}], user_id="u", timestamp=at(4))
    memory.add([{"role": "user", "content": "Oh and my partner and I moved to Ballard in May."}], user_id="u", timestamp=at(6))
    notes = {n.content: n for n in memory.list(user_id="u", layers=[1], limit=50).items}
    austin = next(n for t, n in notes.items() if "Austin" in t)
    assert austin.kind == "fact" and austin.slot == "the user|lives_in" and not austin.content.endswith("?")
    northwind = notes["The user now works at Northwind!"]
    assert northwind.slot == "the user|works_at"
    assert notes["The user works at Brightline as a designer."].status == "superseded"
    ballard = next(n for t, n in notes.items() if "Ballard" in t)
    assert ballard.content.startswith("The user's partner and the user moved") and ballard.slot == "the user|lives_in"
    assert [n.status for t, n in notes.items() if "Denver" in t] == ["superseded"]
    assert austin.status == "superseded" and ballard.status == "active"


def test_you_is_whom_a_group_turn_calls_by_name():
    """In a group chat "you" is the person the turn addresses by name, not the previous speaker."""
    turns = [("Tom", "I finally booked the campsite for August."), ("Marco", "Lena, you still have my camping stove, right?"),
             ("Lena", "Yes, Marco, I will bring the stove to your tent on Friday.")]
    episodes = [Episode(id=f"ep_{i}", user_id="u", speaker=s, content=t, event_time=MON, created_at=MON, updated_at=MON)
                for i, (s, t) in enumerate(turns)]
    got = {d.sources[0]: d.content for d in RuleExtractor().extract(episodes, ["Tom", "Marco", "Lena"])}
    assert got["ep_1"] == "Lena, Lena still has Marco's camping stove, right?", got
    assert "Lena will bring the stove to Marco's tent" in got["ep_2"], got
    assert entities_of("Sorry Tom, the Charité hospital called Dr. Lee about Flight LH1234.", ["Tom"]) == [
        "Tom", "Charité", "Dr. Lee", "Flight LH1234"]


def test_a_request_for_a_suggestion_brings_in_the_askers_preferences(memory: Memory):
    """"Can you suggest a dinner?" is asked of the assistant but about the user, and the user's profile facts
    of likes and restrictions ("stopped eating meat") join the ranking though they share no word with it."""
    from memstrata.read.query import analyse

    plan = analyse("Can you suggest something I could cook for dinner tonight?", [])
    assert plan.persons == [USER_LABEL] and plan.asks_suggestion
    assert not analyse("What did you suggest for dinner?", []).asks_suggestion or \
        analyse("What did you suggest for dinner?", []).persons == [ASSISTANT_LABEL]
    when = datetime(2024, 1, 3, 9, tzinfo=timezone.utc)
    memory.add([{"role": "user", "content": "Yes, I stopped eating meat at the start of the year."}], user_id="u", timestamp=when)
    filler = ["How long should I boil pasta for a quick lunch?", "Which pan is best for searing at high heat?",
              "My oven runs hot, any idea how to calibrate it?", "What temperature should the fridge be?",
              "Can you explain how sourdough starters work?", "I need a timer app for my kitchen.",
              "How do I sharpen a chef's knife at home?", "What is the difference between baking soda and powder?"]
    for i, text in enumerate(filler):
        memory.add([{"role": "user", "content": text},
                    {"role": "assistant", "content": f"Here is what I would do for that, step {i}: keep it simple."}],
                   user_id="u", timestamp=when + timedelta(days=i + 1))
    memory.organise(user_id="u")
    facts = [f for f in memory.list(user_id="u", layers=[3], limit=50).items if "meat" in f.content]
    assert [f.kind for f in facts] == ["preference"]
    question = "Can you suggest something I could cook for dinner tonight?"
    hits = memory.search(question, user_id="u", limit=20, reinforce=False)
    pref = next(h for h in hits if h.id == facts[0].id)
    assert "preferences" in pref.ranks
    without = memory.search(question, user_id="u", limit=20, reinforce=False, recipe="no-preferences")
    assert all("preferences" not in h.ranks for h in without)
    assert "stopped eating meat" in memory.context(question, user_id="u", budget_tokens=60, reinforce=False).text


def test_a_long_document_is_shown_by_its_passage_nearest_the_query(memory: Memory):
    """A document in a block is its passage that answers the query, after its heading, citing the document; the
    whole document is not spent."""
    sections = [f"## Section {i}\nThe owner of workstream {i} is person {i}. " + "Filler words about planning. " * 12
                for i in range(8)]
    doc = "# Plan\n" + "\n\n".join(sections) + "\n\n## Budget\nThe database consolidation budget is 40,000 EUR."
    added = memory.add({"content": doc, "kind": "document"}, user_id="u", timestamp="2024-02-01")
    memory.add("I like reading plans on the train.", user_id="u", timestamp="2024-02-02")
    block = memory.context("What is the budget for the database consolidation?", user_id="u", budget_tokens=1000,
                           reinforce=False)
    doc_id = added.episodes[0].id
    line = next(li for li in block.lines if "40,000" in li.text)
    assert line.text == f"Budget: The database consolidation budget is 40,000 EUR. [{doc_id}]"
    assert line.layer == 0 and line.provenance == [doc_id]
    assert all(li.tokens <= 1000 // 5 for li in block.lines if li.record_id == doc_id)


def test_documents_and_long_turns_are_shown_by_their_passage_nearest_the_query():
    """A document (any length) and a turn over the limit are cut to their block (after its heading) or sentences
    sharing the most query words; a short turn stays whole, and the cut ones are returned as parts."""
    def episode(n: int, text: str, kind: str = "message") -> SearchHit:
        rec = Episode(id=f"ep_{n}", user_id="u", kind=kind, content=text, event_time=MON, created_at=MON, updated_at=MON)
        return SearchHit(record=rec, score=1.0 / n, provenance=[rec.id])

    doc = "# tidepool\n\nSyncs tides into a calendar.\n\n## Requirements\nPython 3.10 or newer.\n\n## License\nMIT"
    essay = " ".join(f"Filler sentence number {i} goes here." for i in range(30)) + " The license of the code is MIT."
    hits = [episode(1, doc, "document"), episode(2, "A short turn about licenses."), episode(3, essay)]
    out, parts = excerpts(hits, max_tokens=20, query_terms=["license", "code"])
    assert [h.record.content for h in out] == [
        "License: MIT", "A short turn about licenses.", "… Filler sentence number 29 goes here. The license of the code is MIT."]
    assert parts == {"ep_1", "ep_3"} and out[0].provenance == ["ep_1"] and out[0].score == hits[0].score
    block = pack("license?", out, budget_tokens=200, parts=parts)
    assert "License: MIT [ep_1]" in block.text and all(li.tokens <= 20 for li in block.lines)


def test_a_note_happens_on_the_day_its_sentence_names():
    """"booked for 2024-05-03" and "on March 30" (past: the last one; to come: the next one) date the note, so
    a question about that week finds it; a sentence naming no single day keeps the turn's time."""
    said = datetime(2024, 4, 20, 10, tzinfo=timezone.utc)
    texts = ["Flight LH1234 from Frankfurt to Munich booked for 2024-05-03, departing 08:15.",
             "I bought a road bike on March 30 and ride it daily.", "My dentist appointment is on May 14 at 9am.",
             "I have lived here since 2019 with my dog Biscuit."]
    episodes = [Episode(id=f"ep_{i}", user_id="u", role="user", content=t, event_time=said, created_at=said,
                        updated_at=said) for i, t in enumerate(texts)]
    days = {d.sources[0]: d.event_time.date() for d in RuleExtractor().extract(episodes, [USER_LABEL])}
    assert days == {"ep_0": date(2024, 5, 3), "ep_1": date(2024, 3, 30), "ep_2": date(2024, 5, 14),
                    "ep_3": date(2024, 4, 20)}


def test_more_ways_to_say_a_new_job_age_or_budget_take_the_slot():
    for text, slot in [("The user started a new job at Northwind.", "the user|works_at"),
                       ("The user accepted an offer from Brightline.", "the user|works_at"),
                       ("The user just turned 35.", "the user|age"), ("The user's budget is now $2000.", "the user|budget"),
                       ("The user is now based in Ballard.", "the user|lives_in"),
                       ("The user and the user's wife live in Porto.", "the user|lives_in"),
                       ("The user started the user's new job at Brightline last Monday.", "the user|works_at"),
                       ("The user left Brightline and joined Northwind Health.", "the user|works_at"),
                       ("The user has bumped the user's budget up to $2000.", "the user|budget"),
                       ("The user left the party and joined Tom.", None),
                       ("The user: Our rent went up to $1,990 starting this month.", "the user|rent"),
                       ("The user just started the user's new role as a product manager.", "the user|job"),
                       ("The user got a job offer from Globex.", None), ("The user and Tom work at Google.", None)]:
        assert slot_of(text, [USER_LABEL]) == slot, text


def test_what_someone_cannot_have_is_a_preference_and_what_holds_on_a_day_is_no_profile_fact():
    from memstrata.organise.profile import durable_kind

    for text, kind in [("Ana stopped eating meat at the start of the year.", "preference"),
                       ("Ana doesn't drink coffee.", "preference"), ("Ana avoids gluten.", "preference"),
                       ("Ana is allergic to tree nuts.", "identity"), ("Ana is a nurse.", "identity"),
                       ("Ana is living in Porto.", "identity"), ("Ana stopped by the shop.", None),
                       ("Ana is flying to Dublin on Tuesday (30 April 2024).", None),
                       ("Ana is going to buy a new bike.", None), ("Ana is learning Spanish.", "identity"),
                       ("Ana loves the hike she did yesterday (7 May 2023).", None)]:
        assert durable_kind(text, "Ana") == kind, text


def test_a_draft_the_assistant_quotes_for_the_user_makes_no_note_about_the_assistant():
    turn = ("Here's a message you can send: 'Hi, I'm following up on my email from last week about the leaking "
            "kitchen tap. Could you arrange a plumber?' I also suggest keeping photos of the leak as evidence.")
    episodes = [Episode(id="ep_1", user_id="u", role="assistant", content=turn, event_time=MON, created_at=MON,
                        updated_at=MON)]
    notes = [d.content for d in RuleExtractor().extract(episodes, [USER_LABEL, ASSISTANT_LABEL])]
    assert notes == ["The assistant: Here's a message the user can send: (a draft).",
                     "The assistant also suggests keeping photos of the leak as evidence."], notes
    letter = ("Here's a draft:\n\n**Subject:** Refund\n\nHi Sam,\n\nI'm writing about my order 1234, which arrived "
              "broken. I'd appreciate a refund this week.\n\nThanks so much,\n[Your name]\n\n"
              "I'd keep it short and send it before Friday.")
    episodes = [Episode(id="ep_2", user_id="u", role="assistant", content=letter, event_time=MON, created_at=MON,
                        updated_at=MON)]
    notes = [d.content for d in RuleExtractor().extract(episodes, [USER_LABEL, ASSISTANT_LABEL])]
    assert not any("order 1234" in n or "refund" in n for n in notes), notes
    assert any("send it before Friday" in n for n in notes), notes


def test_a_statement_that_opens_a_question_is_a_note_of_its_own(memory: Memory):
    """"I live in Denver, so is altitude a thing?" says where the user lives: a fact with its slot, which a
    later move supersedes; the question part stays a question."""
    memory.add([{"role": "user", "content": "I live in Denver, so I guess altitude is a thing for running?"}],
               user_id="u", timestamp="2024-01-05")
    memory.add([{"role": "user", "content": "We moved to Austin in March. Any tips?"}], user_id="u", timestamp="2024-04-01")
    notes = {n.content: n for n in memory.list(user_id="u", layers=[1], limit=50).items}
    denver = notes["The user lives in Denver."]
    assert denver.kind == "fact" and denver.slot == "the user|lives_in" and denver.status == "superseded"
    assert notes["The user guesses altitude is a thing for running?"].kind == "question"


def test_a_longer_search_extends_a_shorter_one_and_never_reorders_it(memory: Memory):
    """search(limit=N) for N above the recipe's candidates starts with the hits of a search `candidates` deep,
    in their order: reading the retrievers deeper adds hits after them, it does not reshuffle the top."""
    when = datetime(2024, 1, 1, 9, tzinfo=timezone.utc)
    topics = ["hiking", "cooking", "painting", "running", "reading", "gardening", "cycling", "chess"]
    for i in range(130):
        memory.add([{"role": "user", "content": f"I spent day {i} on {topics[i % 8]} with friend number {i % 13}."}],
                   user_id="u", timestamp=when + timedelta(hours=i))
    question = "What did I do with friend number 3 while hiking?"
    depth = PRESETS["hybrid"].candidates
    short = [h.id for h in memory.search(question, user_id="u", limit=depth, reinforce=False)]
    long = [h.id for h in memory.search(question, user_id="u", limit=3 * depth, reinforce=False)]
    assert len(short) == depth and len(long) > depth and long[:depth] == short
    assert len(set(long)) == len(long)
