"""Query analysis: the terms a lexical retriever matches on."""

from __future__ import annotations

import re

_WORD = re.compile(r"[\w][\w'’-]*", re.UNICODE)

#: Function words that carry no topic; dropping them keeps BM25 from matching every turn.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours yourself yourselves
    did does doing done get got ever also s t don't didn't i'm it's""".split()
)


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
    terms = list(seen)[:max_terms]
    return terms
