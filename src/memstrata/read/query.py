"""Query analysis: lexical terms, the people a query names, and the time window it asks about."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Sequence

from ..model import ASSISTANT_LABEL, USER_LABEL
from ..text.timeexpr import find_date_range

_WORD = re.compile(r"[\w][\w'’-]*", re.UNICODE)

#: Function words that carry no topic; dropping them keeps BM25 from matching every turn.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours yourself yourselves
    did does doing done get got ever also s t don't didn't i'm it's
    likely probably might""".split()
)
# (The last three frame a question, "Would Ana likely ...?"; they name nothing a memory says.)


def lexical_terms(query: str, max_terms: int = 64) -> list[str]:
    """Lower-cased content words of `query`, in order, without duplicates or stopwords."""
    seen: dict[str, None] = {}
    for match in _WORD.finditer(query.lower()):
        word = match.group(0).strip("'’-")
        word = re.sub(r"['’]s$", "", word)
        if len(word) < 2 and not word.isdigit():
            continue
        if word in STOPWORDS:
            continue
        seen.setdefault(word, None)
    return list(seen)[:max_terms]


@dataclass
class QueryPlan:
    """What the read path knows about a query before retrieving."""

    text: str
    terms: list[str]
    #: Participants of the scope the query names ("What did Caroline ...").
    persons: list[str]
    #: The days the query asks about, if it names a time.
    window: tuple[date, date] | None
    #: The lexical terms that name those persons.
    name_terms: frozenset[str] = frozenset()
    #: Whether the query asks for a suggestion ("Can you recommend a dessert?", "Any ideas for dinner?"),
    #: which the asker's preferences and restrictions bear on though it may share no word with them.
    asks_suggestion: bool = False

    def topic_terms(self) -> list[str]:
        """`terms` without the participants' names, unless nothing else is left.

        In a scope where nearly every memory is about its participants (and notes spell their names
        out where the turn said "I" or "you"), a participant's name matches almost everything and
        favours the notes that repeat it; who the query is about is left to rescoring instead.
        """
        return [t for t in self.terms if t not in self.name_terms] or self.terms


#: "I", "me", "my": a query in the first person is asked by (and about) the user.
_FIRST_PERSON = re.compile(r"\b(?:me|my|mine|myself)\b|(?<![\w.'’])i(?![\w.])", re.I)


#: "you", "your": a query that says what the assistant did is (also) about the assistant ...
_SECOND_PERSON = re.compile(r"\b(?:you|your|yours|yourself)\b", re.I)
#: ... unless "you" only frames a request to it ("Can you tell me ...", "Do you remember ...").
_REQUEST = re.compile(
    r"\b(?:can|could|would|will|do|did)\s+you\s+(?:please\s+)?(?:tell|remind|show|give|help|list|find|recall|"
    r"remember|know|summari[sz]e|let|check|look)\b|\bthank(?:s| you)\b|\byou\s+know\b|"
    # asked of the assistant now, "Can you suggest ...", not "What did you suggest?"
    r"\b(?:can|could|would|will)\s+you\s+(?:please\s+)?(?:suggest|recommend|propose|come up with|think of|write|"
    r"draft|make|plan|put together|explain|describe|share|send|book|pick|choose)\b|"
    r"\bdo you have any\b|\bwhat (?:do|would) you (?:suggest|recommend)\b", re.I)


#: A request for a suggestion, a recommendation or advice.
_SUGGESTION = re.compile(
    r"\b(?:suggest(?:ion)?s?|recommend(?:ation)?s?|ideas?|tips|advice|what should (?:i|we)|where should (?:i|we)|"
    r"which \w+(?: \w+)? should (?:i|we)|help (?:me|us) (?:pick|choose|plan|find|decide)|what (?:could|can) (?:i|we))\b",
    re.I)


def _names(text: str, name: str) -> bool:
    return bool(name) and re.search(rf"\b{re.escape(name.lower())}\b", text) is not None


def analyse(
    query: str, participants: Sequence[str], reference: datetime | None = None, user_id: str | None = None
) -> QueryPlan:
    """Terms, named participants and time window of a query.

    Besides the scope's participants, "the user" and "the assistant" (whom the notes of unnamed turns
    are about) count as named. A query is about the user when it is in the first person ("Where did I
    ...?") or names the scope's `user_id` ("Where does Ana live?" in user ana's scope), and about the
    assistant when it says "you" other than to ask ("What did you recommend?", not "Can you tell me ...")."""
    lowered = query.lower()
    persons = [p for p in dict.fromkeys([*participants, USER_LABEL, ASSISTANT_LABEL]) if p and _names(lowered, p)]
    words = {w for p in persons for w in lexical_terms(p)}
    if user_id and _names(lowered, user_id):
        words.update(lexical_terms(user_id))
        persons.append(USER_LABEL)
    if _FIRST_PERSON.search(query):
        persons.append(USER_LABEL)
    if _SECOND_PERSON.search(_REQUEST.sub(" ", query)):
        persons.append(ASSISTANT_LABEL)
    return QueryPlan(text=query, terms=lexical_terms(query), persons=list(dict.fromkeys(persons)),
                     window=find_date_range(query, reference), name_terms=frozenset(words),
                     asks_suggestion=_SUGGESTION.search(query) is not None)
