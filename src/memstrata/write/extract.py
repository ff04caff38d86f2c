"""L1 note extraction. The offline extractor turns each turn into atomic, self-contained statements.

For every episode: split into sentences, drop small talk, resolve first and second
person to the speakers' names, resolve relative time to absolute dates, pull
entities and keywords. Every note names the episode it came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from typing import Protocol, Sequence

from ..model import Episode, speaker_label
from ..text.blocks import blocks
from ..text.timeexpr import annotate_times, find_date_range
from ..timeutil import MONTHS
from .slots import DESCRIBING_VERBS, describes, slot_of

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=\[|[\"'(]?[A-Z0-9])")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’-]*")

_FUNCTION_WORDS = frozenset(
    """a about after again all also am an and any are as at be been being but by can could did do does doing
    for from had has have having he her here hers him his how i if in into is it its just me more most my no
    not now of on once only or our out over own same she should so some such than that the their them then
    there these they this those through to too up very was we were what when where which while who why will
    with would you your yours yourself yeah yes yep oh ok okay hey hi hello wow thanks thank lol haha hmm
    really so sure totally definitely absolutely awesome great cool nice good glad amazing wonderful fantastic
    super happy sounds sound like love lovely appreciate know see talk chat catch soon later bye take care
    it's that's i'm you're i've you've we're what's how's there's let's can't don't didn't doesn't won't
    isn't wasn't aren't i'll you'll i'd you'd keep going sorry congrats congratulations please dear""".split()
)

_STOP_KEYWORDS = _FUNCTION_WORDS | frozenset("one thing things lot much many way ways time times day days".split())


@dataclass
class NoteDraft:
    """An extracted statement before resolution against what the store knows."""

    content: str
    sources: list[str]
    event_time: datetime
    entities: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    importance: float = 0.5
    kind: str = "fact"
    #: Metadata inherited from the source episode (so metadata filters reach derived notes).
    metadata: dict = field(default_factory=dict)
    #: What the statement is about, for supersession (see write.slots).
    slot: str | None = None


class Extractor(Protocol):
    """Turns episodes into note drafts. `participants` names who takes part in the scope."""

    def extract(self, episodes: Sequence[Episode], participants: Sequence[str]) -> list[NoteDraft]: ...


#: Abbreviations whose period ends no sentence ("St. Mary's", "Dr. Lee", "e.g. Lisbon").
_ABBREVIATION_END = re.compile(
    r"(?:^|[\s(])(?:mr|mrs|ms|dr|prof|st|mt|ft|jr|sr|rev|capt|lt|sgt|vs|approx|dept|e\.g|i\.e)\.$", re.I)
_INITIAL_END = re.compile(r"(?:^|(?:^|\s)(\S+)\s+)[A-Z]\.$")  # "John F." / "C." (the word before, if any)
_ACRONYM_END = re.compile(r"(?:^|\s)(?:[A-Z]\.){2,}$")  # "the U.S."
_INITIAL_START = re.compile(r"^[A-Z]\.(?:\s|$)")


def _continues(part: str, nxt: str) -> bool:
    """Whether the period ending `part` is an abbreviation's or an initial's, not a sentence's."""
    if _ABBREVIATION_END.search(part) or _ACRONYM_END.search(part):
        return True
    initial = _INITIAL_END.search(part)
    if not initial:
        return False
    before = initial.group(1) or ""
    # an initial follows a name or another initial, or comes before one: "John F. Kennedy", "C. S. Lewis"
    return bool(_INITIAL_START.match(nxt)) or bool(re.fullmatch(r"[A-Z][\w'’.-]*", before))


def split_sentences(text: str) -> list[str]:
    """Sentences of a turn, block by block (paragraphs, list items); a period after an abbreviation or
    an initial ends none, and very short fragments are joined to their neighbour, except a short question
    after a statement ("Any tips?"), which is dropped."""
    merged: list[str] = []
    for block in blocks(text):
        joined: list[str] = []
        for p in (p.strip() for p in _SENTENCE_END.split(block)):
            if not p:
                continue
            if joined and _continues(joined[-1], p):
                joined[-1] = f"{joined[-1]} {p}"
            else:
                joined.append(p)
        for i, p in enumerate(joined):
            if i and len(p.split()) <= 2:
                if p.endswith("?") and not merged[-1].endswith("?"):
                    continue  # "I moved to Austin. Any tips?": the ask adds nothing and would make a question of it
                merged[-1] = f"{merged[-1]} {p}"
            else:
                merged.append(p)
    return merged


_GREETING = re.compile(r"^\W*(hey|hi|hello|thanks|thank you|wow|aw+|oh|haha|yay|bye|good (morning|night|to see))\b", re.I)


def is_small_talk(sentence: str, names: Sequence[str]) -> bool:
    """True for greetings, thanks and reactions: no word outside small talk, names and function words."""
    lowered = {n.lower() for n in names}
    words = [w.lower().strip("'’-") for w in _WORD.findall(sentence)]
    if _GREETING.match(sentence) and len(words) <= 3:
        return True
    return all(w in _FUNCTION_WORDS or w in lowered or len(w) < 3 for w in words)


def _person_rules(speaker: str, listener: str | None) -> list[tuple[re.Pattern[str], str]]:
    s, rules = speaker, []

    def add(pattern: str, repl: str, flags: int = 0) -> None:
        rules.append((re.compile(pattern, flags), repl))

    # chat writes "i" as often as "I"
    add(r"\b[Ii]['’]m\b|\b[Ii] am\b", f"{s} is")
    add(r"\b[Ii]['’]ve\b|\b[Ii] have\b", f"{s} has")
    add(r"\b[Ii]['’]d\b", f"{s} would")
    add(r"\b[Ii]['’]ll\b", f"{s} will")
    add(r"\b[Ii] was\b", f"{s} was")
    add(r"\bI\b|(?<![\w.])i(?![\w.])", s)
    add(r"\b[Mm]y\b", f"{s}'s")
    add(r"\b[Mm]ine\b", f"{s}'s")
    add(r"\b[Mm]yself\b", s)
    add(r"(?<![A-Za-z])me\b", s)
    if listener:
        o = listener
        add(r"\b[Yy]ou're\b|\b[Yy]ou are\b", f"{o} is")
        add(r"\b[Yy]ou've\b|\b[Yy]ou have\b", f"{o} has")
        add(r"\b[Yy]ou'll\b", f"{o} will")
        add(r"\b[Yy]ou'd\b", f"{o} would")
        add(r"\b[Yy]ours\b", f"{o}'s")
        add(r"\b[Yy]our\b", f"{o}'s")
        add(r"\b[Yy]ourself\b", o)
        add(r"\b[Yy]ou\b", o)
    return rules


#: Adverbs that may stand between a subject pronoun and its verb ("I really love ...").
_ADVERBS = ("really|also|still|just|always|never|often|usually|sometimes|totally|definitely|actually|truly|even|only|"
            "now|currently|generally|mostly|mainly|normally|typically|rarely|occasionally|finally|already|honestly|"
            "kind of|sort of")
#: Present-tense verbs that follow "I" or "you" and change with a third-person subject ("I love" -> "Ana loves").
_PRESENT_VERBS = frozenset(
    """admire adore agree appreciate bake believe bet build buy call care carry collect come cook create dance
    decide do draw dream drive eat enjoy expect feel find fix forget get give go grow guess hate have hear help
    hike hope imagine keep know learn like listen live look love make mean meet mentor miss need own paint pick
    plan play practice prefer promise realize read recommend remember run say see seem sing start stay study
    support swim take talk teach tell think train travel try understand use visit volunteer wait walk want watch
    wish wonder work worry write advise ask assume bring check choose deserve doubt fear follow hold intend
    lead leave manage mention notice offer order pay prepare propose rent save sell send share sleep spend
    suggest suppose trust wear ride bike cycle jog commute drink avoid skip feed shop climb knit meditate ski surf
    skate sew code host attend belong celebrate coach struggle tend lift""".split()
)
#: Finite forms that change with a third-person subject, after it ("you were" -> "Ben was") or before it in
#: a question ("do you" -> "does Ben", "are you" -> "is Ben").
_FINITE = {"don't": "doesn't", "haven't": "hasn't", "aren't": "isn't", "weren't": "wasn't", "were": "was",
           "are": "is", "am": "is", "do": "does", "have": "has"}
#: Words before a pronoun after which the verb keeps its base form: modals and "did" carry the tense
#: ("can I help"), and after causatives and perception verbs "you" is an object ("made you feel").
_KEEPS_BASE = frozenset(
    """can could will would should shall may might must did didn't won't wouldn't can't couldn't shouldn't to
    make makes made making let lets letting help helps helped helping see sees saw seen watch watched hear heard
    had""".split()
)
_SUBJECT = {
    "I": re.compile(rf"(?<![\w.])[Ii](?![\w'’.])((?:\s+(?:{_ADVERBS}))*)(?:\s+([A-Za-z'’]+))?"),
    "you": re.compile(rf"\b[Yy]ou\b(?![\w'’])((?:\s+(?:{_ADVERBS}))*)(?:\s+([A-Za-z'’]+))?"),
}
_WORD_BEFORE = re.compile(r"([A-Za-z'’]+)\s+$")


def _third_person(verb: str) -> str:
    if verb == "have":
        return "has"
    if verb in ("do", "go"):
        return verb + "es"
    if verb.endswith(("s", "sh", "ch", "x", "z")):
        return verb + "es"
    if verb.endswith("y") and verb[-2:-1] not in ("a", "e", "o", "u"):
        return verb[:-1] + "ies"
    return verb + "s"


def _same_case(word: str, like: str) -> str:
    return word[:1].upper() + word[1:] if like[:1].isupper() else word


def _spelled_like(word: str, like: str) -> str:
    """`word` with the apostrophe `like` uses (chat mixes ' and ’)."""
    return word.replace("'", "’") if "’" in like else word


def _agreeing(sentence: str, pronoun: str) -> str:
    """`sentence` with the verbs that agree with `pronoun` put in the third person, for when the pronoun
    becomes a name: "I try" -> "I tries" (-> "Ana tries"), "do you think" -> "does you think" (->
    "does Ben think"). Verbs after a modal, "did" or a causative keep their form."""
    edits: list[tuple[int, int, str]] = []
    for m in _SUBJECT[pronoun].finditer(sentence):
        before = _WORD_BEFORE.search(sentence, 0, m.start())
        prev = before.group(1) if before else ""
        key = prev.lower().replace("’", "'")
        if key in _KEEPS_BASE:
            continue
        if key in _FINITE:  # a question: the auxiliary before the pronoun agrees, the verb stays
            edits.append((before.start(1), before.end(1), _same_case(_spelled_like(_FINITE[key], prev), prev)))
            continue
        verb = m.group(2)
        if not verb:
            continue
        lowered = verb.lower().replace("’", "'")
        if lowered in _FINITE:
            new = _FINITE[lowered]
        elif verb in _PRESENT_VERBS:
            new = _third_person(verb)
        else:
            continue
        edits.append((m.start(2), m.end(2), _spelled_like(new, verb)))
    for start, end, text in sorted(edits, reverse=True):
        sentence = sentence[:start] + text + sentence[end:]
    return sentence


#: "my sister Ana", "our friend Tom": a relation word that introduces a named person, and whether
#: "he" or "she" can refer back to them (None: either).
_RELATIONS = {
    **dict.fromkeys("brother son husband dad father boyfriend uncle grandpa grandfather nephew".split(), "he"),
    **dict.fromkeys("sister daughter wife mom mum mother girlfriend aunt grandma grandmother niece".split(), "she"),
    **dict.fromkeys("friend partner boss colleague coworker neighbor neighbour cousin teacher coach roommate".split(),
                    None),
}
_INTRODUCED = re.compile(rf"\b((?:[Mm]y|[Oo]ur) (?:best |old |new |little |older |younger )?({'|'.join(_RELATIONS)}))"
                         r"(?:,? ([A-Z][a-z]+)\b|(?![\w'’-]))")
_HE_SHE = re.compile(r"^(?:(He|She)(?:(['’]s)(?= (?:been|got|gotten|had)\b))?(['’]s)?|(His|Her))\b")


def last_introduced(sentence: str, before: tuple[str, str | None] | None) -> tuple[str, str | None] | None:
    """The person "he"/"she" may refer to after `sentence`, with the pronoun that fits them: the one it
    introduces by relation and name ("My sister Ana ...") or by relation alone ("my mom"), none when it
    introduces several, else `before`."""
    found = {(m.group(3) or m.group(1).replace("My ", "my ").replace("Our ", "our "), _RELATIONS[m.group(2)])
             for m in _INTRODUCED.finditer(sentence)}
    if not found:
        return before
    return found.pop() if len(found) == 1 else None


def named_pronoun(sentence: str, named: tuple[str, str | None] | None) -> str:
    """`sentence` with an opening "He"/"She" (or "His"/"Her") replaced by the person the turn just introduced,
    when the pronoun fits ("My sister Ana moved. She loves Porto." -> "Ana loves Porto.", "It's for my mom.
    Her birthday is May 3." -> "My mom's birthday is May 3.", which person resolution makes the speaker's)."""
    m = _HE_SHE.match(sentence)
    if not m or named is None:
        return sentence
    pronoun = (m.group(1) or {"His": "he", "Her": "she"}[m.group(4)]).lower()
    if named[1] not in (None, pronoun):
        return sentence
    who = named[0][:1].upper() + named[0][1:]  # "my mom" opens the sentence: "My mom"
    if m.group(4):
        return f"{who}'s{sentence[m.end():]}"
    verb = " has" if m.group(2) else " is" if m.group(3) else ""  # "She's been" / "She's happy"
    return f"{who}{verb}{sentence[m.end():]}"


def resolve_persons(sentence: str, speaker: str | None, listener: str | None) -> str:
    """Replace I/me/my (and you/your, when the listener is known) with names; the verbs that agreed
    with the pronoun agree with the name ("I really love it" -> "Ana really loves it", "do you
    like it?" -> "does Ben like it?")."""
    if not speaker:
        return sentence
    out = _agreeing(sentence, "I")
    if listener:
        out = _agreeing(out, "you")
    for pattern, repl in _person_rules(speaker, listener):
        out = pattern.sub(repl, out)
    if out[:1].islower() and sentence[:1].isupper():  # "I moved" -> "The user moved"
        out = out[0].upper() + out[1:]
    return out


#: A run of capitalised words. A number inside the run belongs to the name ("Ao 26 Vegan Food Project",
#: "Studio 54 Club"), unless it is a date's ("in May 2023 Ana moved"); one at the end does not ("met Ana 3 times").
_NOT_A_DATE = "".join(f"(?<!{m.capitalize()})" for m in MONTHS)
_NAME_WORD = r"(?:Dr|Mr|Mrs|Ms|Prof|St)\.(?=\s+[A-Z])|[A-ZÀ-ÖØ-Þ](?:[^\W_]|['’-])+"  # "Charité", "Dr. Lee"
_CAPITALISED = re.compile(
    rf"(?<![\w'’-])((?:{_NAME_WORD})(?:(?:{_NOT_A_DATE}\s+\d+)?\s+(?:{_NAME_WORD}))*)")


def entities_of(sentence: str, names: Sequence[str]) -> list[str]:
    """Capitalised phrases not at the start of the sentence, plus participants mentioned."""
    found: dict[str, None] = {}
    for n in names:
        if re.search(rf"\b{re.escape(n)}\b", sentence):
            found[n] = None
    for m in _CAPITALISED.finditer(sentence):
        words = m.group(1).removesuffix("'s").removesuffix("’s").split()
        at_start = m.start() == 0 or sentence[: m.start()].rstrip().endswith((".", "!", "?", ":"))
        while words and (words[0].lower() in _FUNCTION_WORDS or (at_start and (
                len(words) == 1 or words[0].lower() in _PRESENT_VERBS))):  # "Try Ao 26 ..." -> "Ao"
            words = words[1:]
            at_start = False
        phrase = " ".join(words)
        if phrase and phrase.lower() not in _FUNCTION_WORDS and phrase != "I":
            found[phrase] = None
    return list(found)


def keywords_of(sentence: str, limit: int = 12) -> list[str]:
    """Lower-cased content words, in order of appearance."""
    out: dict[str, None] = {}
    for w in _WORD.findall(sentence):
        lw = w.lower().strip("'’-")
        lw = re.sub(r"['’]s$", "", lw)
        if len(lw) >= 3 and lw not in _STOP_KEYWORDS:
            out[lw] = None
    return list(out)[:limit]


#: Openers that only connect a sentence to the conversation ("By the way, ...", "Actually I ..."):
#: dropped from a note, which stands alone. "So", "well", "but", "and", "yes" and "no" only before a comma,
#: since "So many came" and "Well done" start with the same words.
_OPENER = re.compile(
    r"^(?:unrelated,? but\s+"
    r"|(?:by the way|btw|actually|anyway|anyways|also|honestly|basically|oh|well|so|but|and|plus|besides|yes|yeah|"
    r"yep|no|nope|ok|okay|sure|right|for context|for reference|fyi|unrelated|side note|fun fact|oh and|oh and also|"
    r"and also|ah)\s*,\s*"
    r"|(?:by the way|btw|actually|anyway|anyways|also|honestly|basically|oh and|oh,? and also|and also|"
    r"for context|fyi|just so you know|just fyi)\s+"
    # "Big news:", "Update:", "Quick update -"
    r"|(?:(?:big|good|some|exciting|quick|small|random|an?) )?(?:news|update|fyi|context|side note|fun fact|heads up)"
    r"\s*[:—–-]\s*"
    r")+",
    re.I,
)


def without_opener(sentence: str) -> str:
    """`sentence` without leading discourse markers, its first letter capitalised again."""
    rest = _OPENER.sub("", sentence)
    if rest == sentence or not rest:
        return sentence
    return rest[0].upper() + rest[1:]


#: A quoted passage of several words in an assistant's turn: a draft written for the user to send ("Here is a
#: message: 'Hi, I'm following up on my email ...'"), whose "I" is the user's, not the assistant's.
_DRAFT = re.compile(r"[\"“][^\"“”]{40,}[\"”]|(?<![\w'’])['‘](?:[^'‘’]|(?<=\w)['’](?=\w)){40,}?[.!?]['’](?![\w'’])",
                    re.S)


#: A letter the assistant writes out for the user: from a "Subject:" line or a greeting line ("Hi Sam,", "Dear
#: team,") to the name after its sign-off ("Thanks so much,\n[Your name]"), or to the end.
_LETTER_START = re.compile(r"^[ \t]*(?:\*\*)?subject:.*$|^[ \t]*(?:dear|hi|hello|hey)\b[^\n,]{0,40},[ \t]*$", re.I | re.M)
_SIGN_OFF = re.compile(r"^[ \t]*(?:thanks(?: so much| again| a lot)?|thank you|best(?: regards| wishes)?|kind regards|regards|"
                       r"sincerely|cheers|warmly|all the best|yours(?: truly| sincerely)?),?[ \t]*\n[^\n]*$", re.I | re.M)


def without_drafts(text: str) -> str:
    """An assistant's `text` without the drafts it writes for the user, quoted or set out as a letter (their
    "I" is the user's, and they say nothing of the assistant)."""
    text = _DRAFT.sub(" (a draft). ", text)
    start = _LETTER_START.search(text)
    if start is None:
        return text
    end = _SIGN_OFF.search(text, start.end())
    return text[: start.start()] + "(a draft).\n\n" + (text[end.end():] if end else "")


def statements(text: str, names: Sequence[str]) -> list[str]:
    """Sentences worth a note: small talk dropped, discourse openers taken off, a statement that opens a
    question ("I'm vegetarian, what can I cook?") apart from it.

    (Joining a sentence that opens with a pronoun to the one before it made notes longer and
    lowered LoCoMo recall per token, 0.866 -> 0.854 at 1000 tokens; sentences stay separate.)
    """
    out: list[str] = []
    for sentence in split_sentences(text):
        for part in stated_then_asked(without_opener(sentence)):
            if not is_small_talk(part, names):
                out.append(part)
    return out


#: A question that opens by stating something about the speaker: "I live in Denver, so is altitude a thing?",
#: "My daughter is allergic to nuts, any cake ideas?". The statement is a fact of its own.
_STATED_THEN_ASKED = re.compile(
    r"^(?P<said>(?:I|I['’]m|I['’]ve|I['’]ll|My|We|We['’]re|We['’]ve|Our)\s[^?,;]{6,}?)\s*[,;]\s*(?:and |but |so |though )?"
    r"(?P<asked>(?:any|what|how|which|where|when|who|why|should|can|could|would|will|do|does|did|is|are|was|"
    r"were|have|has|i guess|i wonder)\b[^?]*\?)$", re.I)


def stated_then_asked(sentence: str) -> list[str]:
    """`sentence`, or its opening statement and its question apart when it states something about the speaker
    before asking (see `_STATED_THEN_ASKED`): a statement asked about is still said."""
    m = _STATED_THEN_ASKED.match(sentence)
    if not m:
        return [sentence]
    asked = m.group("asked")
    return [m.group("said").rstrip() + ".", asked[:1].upper() + asked[1:]]


class RuleExtractor:
    """The offline extractor: rules only, no model. Deterministic."""

    #: A note needs at least this many content words (besides participants' names) ...
    min_content_words: int = 2
    #: ... and this many unless it names something or a time.
    solid_content_words: int = 3

    def extract(self, episodes: Sequence[Episode], participants: Sequence[str]) -> list[NoteDraft]:
        drafts: list[NoteDraft] = []
        last_other: dict[str, str] = {}
        names = [p for p in participants if p]
        lowered = {w.lower() for n in names for w in _WORD.findall(n)}  # words of names are not content
        for ep in episodes:
            speaker = ep.speaker or default_name(ep)
            listener = addressee(ep.content, speaker, names) or _listener(speaker, participants, last_other)
            named: tuple[str, str | None] | None = None  # the last "my sister Ana" of this turn
            for sentence in statements(without_drafts(ep.content) if ep.role == "assistant" else ep.content, names):
                sentence = named_pronoun(sentence, named)
                named = last_introduced(sentence, named)
                resolved = resolve_persons(sentence, speaker, listener)
                is_question = sentence.rstrip().endswith("?")
                content = [k for k in keywords_of(resolved, limit=50) if k not in lowered]
                ents = entities_of(resolved, names)
                annotated, mentions = annotate_times(resolved, ep.event_time)
                named_something = bool(set(ents) - set(names)) or bool(mentions)
                slot = None if is_question or not speaker else slot_of(annotated, [speaker])
                described = bool(speaker) and not is_question and describes(annotated, [speaker]) and any(
                    k not in DESCRIBING_VERBS for k in content)
                if slot is None and not described and (len(content) < self.min_content_words or (
                    len(content) < self.solid_content_words and not named_something
                )):
                    continue  # "It really mattered.": too little to stand alone ("I'm 34", "I'm vegan" are not)
                if is_question and len(content) < self.solid_content_words:
                    continue  # "What happened then?": asks, says nothing
                if speaker and speaker.lower() not in annotated.lower():
                    annotated = f"{speaker[:1].upper()}{speaker[1:]}: {annotated}"
                event_time = ep.event_time
                day = next((m.first for m in mentions if m.is_day), None) or named_day(resolved, ep.event_time)
                if day:  # the note happened on the day it names: "yesterday", "on March 30", "for 2024-05-03"
                    event_time = datetime.combine(day, time(12, 0), tzinfo=timezone.utc)
                if speaker:  # the speaker first: the note is their statement
                    ents = [speaker] + [e for e in ents if e != speaker]
                drafts.append(
                    NoteDraft(
                        content=annotated,
                        sources=[ep.id],
                        event_time=event_time,
                        entities=ents,
                        keywords=keywords_of(annotated),
                        importance=0.3 if is_question else 0.5,
                        kind="question" if is_question else "fact",
                        metadata=dict(ep.metadata),
                        slot=slot,
                    )
                )
            if speaker:
                for p in participants:
                    if p != speaker:
                        last_other[p] = speaker
        return drafts


def named_day(sentence: str, said: datetime) -> date | None:
    """The one day a sentence names by its date ("on March 30": the last one before `said` in the past tense,
    the next one for what is to come; "2024-05-03"), if it names exactly one day."""
    window = find_date_range(sentence, said)
    return window[0] if window and window[0] == window[1] else None


def default_name(ep: Episode) -> str | None:
    """Who "I" is when a message names no speaker: the user for user turns, the assistant for the agent's."""
    return speaker_label(ep.role, None)


def addressee(text: str, speaker: str | None, names: Sequence[str]) -> str | None:
    """The participant a turn calls by name ("Lena, you still have ...", "Hey Tom, ...", "... right, Lena?"):
    whom its "you" means in a group. None when it names no one else that way, or several."""
    others = [n for n in names if n and n != speaker]
    if not others:
        return None
    alternatives = "|".join(re.escape(n) for n in sorted(others, key=len, reverse=True))
    called = re.findall(
        rf"(?:^|[.!?]\s+)(?:(?:hey|hi|hello|thanks|thank you|ok|okay|oh|so|well|yes|yeah|no|sorry|congrats),?\s+)?"
        rf"({alternatives})\s*,|,\s*({alternatives})\s*[.!?]", text, flags=re.I)
    found = {next(n for n in others if n.lower() == (a or b).lower()) for a, b in called}
    return found.pop() if len(found) == 1 else None


def _listener(speaker: str | None, participants: Sequence[str], last_other: dict[str, str]) -> str | None:
    """In a two-party conversation the listener is the other participant."""
    if not speaker:
        return None
    others = [p for p in participants if p and p != speaker]
    if len(others) == 1:
        return others[0]
    return last_other.get(speaker)
