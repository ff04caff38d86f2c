"""Relative time expressions ("yesterday", "last week", "two days ago") resolved against a reference time."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from ..timeutil import MONTHS

_NUM_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "couple of": 2, "a couple of": 2, "few": 3, "a few": 3, "several": 3,
}
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def fmt_day(d: date) -> str:
    """``7 May 2023``."""
    return f"{d.day} {d.strftime('%B')} {d.year}"


def fmt_month(year: int, month: int) -> str:
    return f"{date(year, month, 1).strftime('%B')} {year}"


def _add_months(d: date, months: int) -> tuple[int, int]:
    total = d.year * 12 + (d.month - 1) + months
    return total // 12, total % 12 + 1


def month_end(year: int, month: int) -> date:
    """The last day of the month."""
    return date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)


@dataclass
class TimeMention:
    """A relative expression found in a text and what it means."""

    start: int
    end: int
    phrase: str
    #: Human form of the resolved time, e.g. "7 May 2023" or "April 2023".
    resolved: str
    #: First and last day the expression covers.
    first: date
    last: date

    @property
    def is_day(self) -> bool:
        return self.first == self.last


_MONTH_NAME = "(" + "|".join(m.capitalize() for m in MONTHS) + ")"  # capitalised: not the verb "may"
_NUM = r"(\d+|a couple of|a few|couple of|few|several|an?|one|two|three|four|five|six|seven|eight|nine|ten)"
_UNIT = r"(day|week|month|year)"
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # spans up to or from the reference day: "the past two weeks", "the next few days", "the coming days"
    (re.compile(rf"\b(?:(?:in|over|during|for)\s+)?the\s+(past|last|previous)\s+{_NUM}\s+{_UNIT}s\b", re.I),
     "span_past"),
    (re.compile(rf"\b(?:(?:in|over|during|for)\s+)?the\s+(next|coming)\s+(?:{_NUM}\s+)?{_UNIT}s\b", re.I),
     "span_next"),
    (re.compile(rf"\b{_NUM}\s+weekends?\s+(?:ago|back)\b", re.I), "weekends_ago"),
    (re.compile(r"\bthe\s+(week|weekend|month|year)\s+before\s+last\b", re.I), "before_last"),
    (re.compile(rf"\b{_NUM}\s+{_UNIT}s?\s+(?:ago|back)\b", re.I), "ago"),
    (re.compile(rf"\bin\s+{_NUM}\s+{_UNIT}s?(?:['’]?\s+time)?\b", re.I), "in_future"),
    (re.compile(r"\b(?:upcoming|coming\s+up)\b", re.I), "upcoming"),
    (re.compile(r"\b(the\s+day\s+before\s+yesterday)\b", re.I), "before_yesterday"),
    (re.compile(r"\b(yesterday|last\s+night)\b", re.I), "yesterday"),
    (re.compile(r"\b(today|tonight|this\s+morning|this\s+afternoon|this\s+evening|earlier\s+today)\b", re.I), "today"),
    (re.compile(r"\b(tomorrow)\b", re.I), "tomorrow"),
    (re.compile(r"\b(last|this\s+past|past)\s+(weekend)\b", re.I), "last_weekend"),
    (re.compile(r"\b(this)\s+(weekend)\b", re.I), "this_weekend"),
    (re.compile(r"\b(next)\s+(weekend)\b", re.I), "next_weekend"),
    (re.compile(r"\b(last|this\s+past)\s+(monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b", re.I), "last_weekday"),
    (re.compile(r"\b(next|this\s+coming)\s+(monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b", re.I), "next_weekday"),
    (re.compile(r"\b(on)\s+(monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b", re.I), "on_weekday"),
    (re.compile(r"\b(last|past|previous)\s+(week)\b", re.I), "last_week"),
    (re.compile(r"\b(next|coming)\s+(week)\b", re.I), "next_week"),
    (re.compile(r"\b(this)\s+(week)\b", re.I), "this_week"),
    (re.compile(r"\b(last|past|previous)\s+(month)\b", re.I), "last_month"),
    (re.compile(r"\b(next|coming)\s+(month)\b", re.I), "next_month"),
    (re.compile(r"\b(this)\s+(month)\b", re.I), "this_month"),
    (re.compile(r"\b(last|past|previous)\s+(year)\b", re.I), "last_year"),
    (re.compile(r"\b(next|coming)\s+(year)\b", re.I), "next_year"),
    (re.compile(r"\b(this)\s+(year)\b", re.I), "this_year"),
    (re.compile(r"\b(last|this\s+past)\s+(summer|winter|spring|fall|autumn)\b", re.I), "last_season"),
    (re.compile(r"\b(this|next|this\s+coming)\s+(summer|winter|spring|fall|autumn)\b", re.I), "other_season"),
    (re.compile(rf"(?<!born\s)\b(?i:(back\s+in|in|during|throughout)\s+(?:(?:early|mid-?|late)\s+)?)"
                rf"{_MONTH_NAME}\b(?![\s,]*\d)"), "in_month"),
]
#: A month alone in a turn is dated by the tense ("back in March": past), not after "born" (not a recent one).
#: Kinds read only in a query ("upcoming": the next days) or only in a turn (a month alone: a query has its own
#: reading of it in `find_date_range`).
_QUERY_ONLY, _TURN_ONLY = {"upcoming"}, {"in_month"}


#: What tells, in the sentence around a bare weekday ("on Saturday"), whether it is past or to come.
_FUTURE = re.compile(r"\b(?:will|won['’]t|shall|gonna|going to|plan(?:s|ning)? to|hope to|can['’]t wait|looking forward|"
                     r"next|tomorrow|upcoming|coming up)\b|['’]ll\b", re.I)
_PAST = re.compile(r"\b(?:was|were|went|had|did|got|made|took|saw|came|met|threw|won|ran|gave|bought|found|told|said|"
                   r"left|began|ate|drank|wrote|felt|spent|brought|caught|flew)\b", re.I)
#: A word in -ed is a past verb unless the sentence is in the present ("The shop is closed on Sunday"); a few
#: words in -ed are not verbs in the past ("need", "hundred").
_ED_WORD = (r"(?!(?:need|feed|seed|speed|weed|greed|bleed|breed|deed|indeed|proceed|succeed|exceed|hundred|sacred|"
            r"naked|wicked)\b)\w{2,}ed\b")
_PAST_ED = re.compile(rf"\b{_ED_WORD}", re.I)
#: "got" after "have" is a possession: "I've got a test on Monday", "What have I got on May 3?".
_HAVE_GOT = re.compile(r"(?:\b(?:have|has)|['’]ve)(?:\s+\w+)?\s+got\b", re.I)
_PRESENT = re.compile(r"\b(?:is|are|am)\b|['’](?:m|re|s)\b", re.I)

#: Arrangements, which English words in the present: a journey in the present continuous ("I'm flying to
#: Dublin on Tuesday"; other verbs in it can be a routine: "We are meeting on Monday" stays undated), an
#: event one has ("has a vet appointment on Monday"), and a calendar line without a verb ("Calendar: Mom's
#: birthday dinner at Luigi's on Saturday at 7pm").
_JOURNEY = re.compile(r"(?:\b(?:am|is|are)|['’](?:m|re|s))\s+(?:\w+\s+)?(?:flying|driving|leaving|heading|"
                      r"travell?ing|going|coming|arriving|returning|moving|visiting|sailing|departing|starting)\b",
                      re.I)
_EVENT = (r"(?:appointment|meeting|interview|exam|test|class|lesson|flight|reservation|booking|party|dinner|lunch|"
          r"brunch|date|game|match|concert|show|gig|deadline|surgery|check-?up|rehearsal|practice|recital|shift|"
          r"conference|wedding|trip|presentation|session|birthday|ceremony|graduation|tournament|race|festival)s?")
_HAS_EVENT = re.compile(rf"(?:\b(?:have|has)|['’]ve)(?!\s+been\b)(?:\s+got)?(?:\s+[\w'’-]+){{0,3}}?\s+{_EVENT}\b",
                        re.I)
_CALENDAR_CUE = re.compile(rf"\b{_EVENT}\b|\b\d{{1,2}}(?::\d{{2}})?\s*(?:am|pm|a\.m\.|p\.m\.)|\b\d{{1,2}}:\d{{2}}\b|"
                           r"^\s*\w+(?:\s\w+)?:\s", re.I)
#: Signs of a finite verb; a sentence with none of them (and no past verb) is a note, not a statement.
_VERB = re.compile(r"\b(?:am|is|are|was|were|be|been|has|have|had|do|does|did|will|would|can|could|shall|should|"
                   r"might|must|i|we|they|he|she|you)\b|n['’]t\b|['’](?:m|re|ve|d|ll)\b|"
                   r"\b(?:it|he|she|that|there|what|who|here|where|how)['’]s\b", re.I)
#: How a query speaks of what is to come: scheduling words, or the present ("What do I have on May 3?").
_SCHEDULED = r"planned|scheduled|booked|arranged|expected|supposed"
_QUERY_FUTURE = re.compile(rf"\b(?:{_SCHEDULED}|due|happening|coming)\b|\b(?:do|does|am|is|are|have|has)\b|"
                           r"\b(?:i|you|we|they)['’](?:m|re|ve)\b|\b(?:what|who|where|when|how|that|it|there|here|he|"
                           r"she)['’]s\b", re.I)
_QUERY_PAST_ED = re.compile(rf"\b(?!(?:{_SCHEDULED})\b){_ED_WORD}", re.I)
_HABIT = re.compile(r"\b(?:usually|always|often|normally|typically|every|each)\b", re.I)


def _sentence(text: str, start: int, end: int) -> str:
    """The sentence of `text` around `start:end`."""
    lo = max((text.rfind(c, 0, start) for c in ".!?"), default=-1) + 1
    his = [i for i in (text.find(c, end) for c in ".!?") if i >= 0]
    return text[lo : min(his) if his else len(text)]


def _has_past_verb(sentence: str) -> bool:
    """Whether `sentence` has one of the irregular past verbs (not the "got" of "have got")."""
    return bool(_PAST.search(_HAVE_GOT.sub(" have ", sentence)))


def _is_arrangement(sentence: str) -> bool:
    """A sentence that, in the present or without a verb, speaks of a plan."""
    if _JOURNEY.search(sentence) or _HAS_EVENT.search(sentence):
        return True
    return not _VERB.search(sentence) and not _PAST_ED.search(sentence) and bool(_CALENDAR_CUE.search(sentence))


def _tense(text: str, start: int, end: int) -> str | None:
    """"future", "past" or None for the sentence of `text` around `start:end`."""
    sentence = _sentence(text, start, end)
    if _FUTURE.search(sentence):
        return "future"
    if _has_past_verb(sentence) or (_PAST_ED.search(sentence) and not _PRESENT.search(sentence)):
        return "past"
    return "future" if _is_arrangement(sentence) else None


def _query_tense(query: str) -> str | None:
    """"future", "past" or None for a question: "What did I do ...?" is past, "What do I have ...?", "What
    will I ...?" and "Is anything planned ...?" are about what is to come."""
    if _FUTURE.search(query):
        return "future"
    if _has_past_verb(query) or _QUERY_PAST_ED.search(query):
        return "past"
    return "future" if _QUERY_FUTURE.search(query) or _is_arrangement(query) else None


def _number(text: str) -> int:
    text = text.lower().strip()
    return int(text) if text.isdigit() else _NUM_WORDS.get(text, 1)


def fmt_span(first: date, last: date) -> str:
    """``19 April 2024 to 26 April 2024``."""
    return f"{fmt_day(first)} to {fmt_day(last)}"


def _shift(d: date, unit: str, n: int) -> date:
    """`d` moved by `n` days, weeks, months or years (a day past a month's end is its last day)."""
    if unit in ("day", "week"):
        return d + timedelta(days=n * (7 if unit == "week" else 1))
    y, m = _add_months(d, n * (12 if unit == "year" else 1))
    return min(date(y, m, 1) + timedelta(days=d.day - 1), month_end(y, m))


def _span_count(word: str | None, unit: str) -> int:
    """How many units "the next few days" and the like cover: a vague count of days ("few", "several",
    none: "the coming days") is a week; otherwise the number, a vague one being three."""
    if unit == "day" and (word is None or word.lower().strip() in ("few", "a few", "several")):
        return 7
    return _number(word) if word else 3


def _saturday(ref: date, weeks: int = 0) -> date:
    """The Saturday of "this weekend" (the current one on a weekend, else the coming one), `weeks` later."""
    sat = ref - timedelta(days=ref.weekday() - 5) if ref.weekday() >= 5 else ref + timedelta(days=5 - ref.weekday())
    return sat + timedelta(weeks=weeks)


def _weekend(sat: date) -> tuple[str, date, date]:
    """The weekend that begins on `sat`."""
    return f"the weekend of {fmt_day(sat)}", sat, sat + timedelta(days=1)


def _week(d: date) -> tuple[str, date, date]:
    """The Monday-to-Sunday week `d` is in."""
    monday = d - timedelta(days=d.weekday())
    return f"the week of {fmt_day(monday)}", monday, monday + timedelta(days=6)


def _unit_window(d: date, unit: str) -> tuple[str, date, date]:
    """The day, week, month or year `d` is in."""
    if unit == "day":
        return fmt_day(d), d, d
    if unit == "week":
        return _week(d)
    if unit == "month":
        return fmt_month(d.year, d.month), date(d.year, d.month, 1), month_end(d.year, d.month)
    return str(d.year), date(d.year, 1, 1), date(d.year, 12, 31)


_SEASON_START = {"spring": 3, "summer": 6, "fall": 9, "autumn": 9, "winter": 12}


def _season(season: str, year: int) -> tuple[str, date, date]:
    """The three months of a season starting in `year` (winter ends in the next year)."""
    start = _SEASON_START[season]
    ey, em = _add_months(date(year, start, 1), 2)
    return f"{season} {year}", date(year, start, 1), month_end(ey, em)


def _month_year(month: int, ref: date, tense: str | None) -> int:
    """The year of a month named without one: the last one up to `ref`, or for what is to come the next one
    from `ref` on; the month `ref` is in either way."""
    if tense == "future":
        return ref.year if month >= ref.month else ref.year + 1
    return ref.year if month <= ref.month else ref.year - 1


def _resolve_span(kind: str, match: re.Match[str], ref: date) -> tuple[str, date, date] | None:
    """Windows counted from the reference day: spans, weekends and units before or after it."""
    if kind in ("span_past", "span_next"):
        unit = match.group(3).lower()
        n = _span_count(match.group(2), unit)
        if kind == "span_past":
            first = _shift(ref, unit, -n)
            return fmt_span(first, ref), first, ref
        last = _shift(ref, unit, n)
        return fmt_span(ref, last), ref, last
    if kind == "upcoming":
        return fmt_span(ref, ref + timedelta(days=7)), ref, ref + timedelta(days=7)
    if kind == "weekends_ago":
        return _weekend(_saturday(ref, -_number(match.group(1))))
    unit = match.group(1).lower()  # before_last
    if unit == "weekend":
        return _weekend(_saturday(ref, -2))
    return _unit_window(_shift(ref, unit, -2), unit)


def _resolve_tensed(kind: str, match: re.Match[str], ref: date, tense: str | None,
                    query: bool) -> tuple[str, date, date] | None:
    """Expressions whose side of the reference day the sentence's tense decides."""
    if kind == "in_future":  # "in two weeks": to come, unless a past or a habit says it is a duration
        if tense == "past" or not (tense == "future" or query) or _HABIT.search(
                _sentence(match.string, match.start(), match.end())):
            return None
        unit = match.group(2).lower()
        return _unit_window(_shift(ref, unit, _number(match.group(1))), unit)
    if kind == "in_month":  # a month without its year in a turn: "back in March", "we went there in May"
        tense = "past" if match.group(1).lower().startswith("back") else tense
        if tense is None:
            return None
        mo = _month_index(match.group(2))
        return _unit_window(date(_month_year(mo, ref, tense), mo, 1), "month")
    # the weekday before the reference day (last), or after it (next); "on Saturday": before in a sentence
    # about the past, after in one about what is to come (on that very weekday: a week before or after),
    # none without a tense
    tense = {"last_weekday": "past", "next_weekday": "future"}.get(kind) or tense
    if tense is None:
        return None
    wd = _WEEKDAYS.index(match.group(2).lower())
    if tense == "past":
        d = ref - timedelta(days=(ref.weekday() - wd) % 7 or 7)
    else:
        d = ref + timedelta(days=(wd - ref.weekday()) % 7 or 7)
    return fmt_day(d), d, d


def _resolve(kind: str, match: re.Match[str], ref: date, tense: str | None = None,
             query: bool = False) -> tuple[str, date, date] | None:
    """What the `kind` of expression `match` means said on `ref`; `tense` is the query's, if one."""
    if kind in ("span_past", "span_next", "upcoming", "weekends_ago", "before_last"):
        return _resolve_span(kind, match, ref)
    if kind in ("in_future", "in_month", "last_weekday", "on_weekday", "next_weekday"):
        return _resolve_tensed(kind, match, ref, tense or _tense(match.string, match.start(), match.end()), query)
    if kind == "ago":
        n, unit = _number(match.group(1)), match.group(2).lower()
        if unit == "week":
            d = ref - timedelta(weeks=n)
            return f"the week of {fmt_day(d - timedelta(days=d.weekday()))}", d - timedelta(days=d.weekday()), d
        return _unit_window(_shift(ref, unit, -n), unit)
    if kind == "before_yesterday":
        d = ref - timedelta(days=2)
        return fmt_day(d), d, d
    if kind == "yesterday":
        d = ref - timedelta(days=1)
        return fmt_day(d), d, d
    if kind == "today":
        return fmt_day(ref), ref, ref
    if kind == "tomorrow":
        d = ref + timedelta(days=1)
        return fmt_day(d), d, d
    if kind in ("last_weekend", "this_weekend", "next_weekend"):
        # "this weekend" is the one the reference day is in, else the coming one; "last weekend" the one
        # before it; "next weekend" the coming one on a weekday, the one after on a weekend
        shift = {"last_weekend": -1, "this_weekend": 0, "next_weekend": int(ref.weekday() >= 5)}[kind]
        return _weekend(_saturday(ref, shift))
    if kind in ("last_week", "next_week", "this_week"):
        return _week(ref + timedelta(days={"last_week": -7, "next_week": 7, "this_week": 0}[kind]))
    if kind in ("last_month", "next_month", "this_month"):
        return _unit_window(_shift(ref, "month", {"last_month": -1, "next_month": 1, "this_month": 0}[kind]), "month")
    if kind in ("last_year", "next_year", "this_year"):
        return _unit_window(_shift(ref, "year", {"last_year": -1, "next_year": 1, "this_year": 0}[kind]), "year")
    if kind in ("last_season", "other_season"):
        return _resolve_season(match.group(1).lower(), match.group(2).lower(), ref)
    return None


def _resolve_season(which: str, season: str, ref: date) -> tuple[str, date, date]:
    """"last summer": the last one to have ended before `ref`'s month; "this summer": the one of `ref`'s year
    (this winter: the one `ref` is in, or the one that begins in December); "next summer": the next to begin."""
    start = _SEASON_START[season]
    if which in ("last", "this past"):
        y = ref.year if ref.month > start + 2 else ref.year - 1
    elif which == "this":
        y = ref.year - (season == "winter" and ref.month <= 2)
    else:
        y = ref.year if date(ref.year, start, 1) > ref else ref.year + 1
    return _season(season, y)


def _find(text: str, ref: date, tense: str | None = None, query: bool = False) -> list[TimeMention]:
    """The mentions of `text` said on `ref`, a query's (read with its `tense`) or a turn's."""
    found: list[TimeMention] = []
    taken: list[tuple[int, int]] = []
    for pattern, kind in _PATTERNS:
        if kind in (_TURN_ONLY if query else _QUERY_ONLY):
            continue
        for m in pattern.finditer(text):
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            resolved = _resolve(kind, m, ref, tense, query)
            if resolved is None:
                continue
            label, first, last = resolved
            found.append(TimeMention(m.start(), m.end(), m.group(0), label, first, last))
            taken.append((m.start(), m.end()))
    return sorted(found, key=lambda t: t.start)


def find_time_mentions(text: str, reference: datetime | date) -> list[TimeMention]:
    """Relative time expressions in `text`, resolved against `reference`, without overlaps."""
    return _find(text, reference.date() if isinstance(reference, datetime) else reference)


def annotate_times(text: str, reference: datetime | date) -> tuple[str, list[TimeMention]]:
    """`text` with each relative expression followed by its absolute time: "yesterday (7 May 2023)"."""
    mentions = find_time_mentions(text, reference)
    out, pos = [], 0
    for t in mentions:
        out.append(text[pos : t.end])
        out.append(f" ({t.resolved})")
        pos = t.end
    out.append(text[pos:])
    return "".join(out), mentions


_MONTH = "(" + "|".join(MONTHS) + ")"
_ABS_DATE = re.compile(
    rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\s*,?\s+(\d{{4}})\b"
    rf"|\b{_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?\s*,?\s+(\d{{4}})\b",
    re.I,
)
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_NUMERIC_DATE = re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})(?![\d/])")  # 3/15/2024: month first
_MONTH_YEAR = re.compile(rf"\b{_MONTH}\s+(\d{{4}})\b", re.I)
#: A day of a month without its year ("March 3rd", "the 5th of April"), taken as the last one before the
#: reference day, or the next one in a query about what is to come; a month alone after a preposition ("in
#: March", "since early April") likewise.
_DAY_MONTH = re.compile(
    rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\b|\b{_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?![:\d])", re.I)
_PART = r"(early|mid|late)(?:-|\s+)"
_MONTH_ALONE = re.compile(rf"\b(?:{_PART}|(?:in|during|since|throughout|of)\s+(?:{_PART})?){_MONTH}\b", re.I)
#: The part of a month "early", "mid" and "late" mean: days 1-10, 11-20, 21 to the end.
_PART_DAYS = {"early": (1, 10), "mid": (11, 20), "late": (21, 31)}
#: "the first week of March": days 1-7, the second 8-14, ... the last its last seven days.
_WEEK_OF_MONTH = re.compile(
    rf"\b(first|second|third|fourth|last|1st|2nd|3rd|4th)\s+week\s+of\s+{_MONTH}(?:\s*,?\s+(\d{{4}}))?\b", re.I)
_WEEK_ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
#: A day of the month alone: "on the 19th" (not "on the 3rd floor").
_ORDINAL_DAY = re.compile(
    rf"\bon\s+the\s+(\d{{1,2}})(?:st|nd|rd|th)\b(?!\s+(?:of\s+)?{_MONTH}\b|\s+(?:century|floor|grade|place|time|row|"
    r"lap|round|hole|minute|inning|anniversary|birthday|day|week|month|year|street|avenue)\b)", re.I)
_YEAR = re.compile(r"\b(19\d{2}|20\d{2})\b")


def _day(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _month_index(name: str) -> int:
    return MONTHS.index(name.lower()) + 1


def _month_window(year: int, month: int, part: str | None = None) -> tuple[date, date]:
    """All of a month, or its early, mid or late part."""
    lo, hi = _PART_DAYS.get((part or "").lower(), (1, 31))
    end = month_end(year, month)
    return date(year, month, lo), date(year, month, min(hi, end.day))


def _week_of_month(m: re.Match[str], ref: date | None, tense: str | None) -> tuple[date, date] | None:
    """"the first week of March" (its year given, or read from `ref` and `tense`)."""
    mo = _month_index(m.group(2))
    if m.group(3):
        y = int(m.group(3))
    elif ref is not None:
        y = _month_year(mo, ref, tense)
    else:
        return None
    if m.group(1).lower() == "last":
        end = month_end(y, mo)
        return end - timedelta(days=6), end
    first = date(y, mo, 1) + timedelta(weeks=_WEEK_ORDINALS[m.group(1).lower()] - 1)
    return first, first + timedelta(days=6)


def _day_month(mo: int, day: int, ref: date, tense: str | None) -> date | None:
    """A day of a month without its year: the last one up to `ref`, or the next one from it on."""
    step = 1 if tense == "future" else -1
    for y in (ref.year, ref.year + step):
        d = _day(y, mo, day)
        if d and (d >= ref if step == 1 else d <= ref):
            return d
    return None


def _ordinal_day(day: int, ref: date, tense: str | None) -> date | None:
    """"on the 19th": of `ref`'s month if not after it, else of an earlier month; for what is to come the
    next 19th from `ref` on."""
    step = 1 if tense == "future" else -1
    for k in range(13):
        y, mo = _add_months(ref, k * step)
        d = _day(y, mo, day)
        if d and (d >= ref if step == 1 else d <= ref):
            return d
    return None


def _relative_range(text: str, ref: date) -> tuple[date, date] | None:
    """A query's window that needs the reference day: a day, week or month without its year, or a relative
    expression; a question about what is to come looks forward, one in the past or without a tense back."""
    tense = _query_tense(text)
    m = next((m for m in _DAY_MONTH.finditer(text) if "may" not in m.group(0)), None)  # "you may 2x it"
    if m:
        mo, day = (_month_index(m.group(2)), int(m.group(1))) if m.group(1) else (
            _month_index(m.group(3)), int(m.group(4)))
        if d := _day_month(mo, day, ref, tense):
            return d, d
    m = _ORDINAL_DAY.search(text)
    if m and (d := _ordinal_day(int(m.group(1)), ref, tense)):
        return d, d
    mentions = _find(text, ref, tense, query=True)
    if mentions:
        return mentions[0].first, mentions[0].last
    m = _MONTH_ALONE.search(text)
    if m:
        mo = _month_index(m.group(3))
        return _month_window(_month_year(mo, ref, tense), mo, m.group(1) or m.group(2))
    return None


def find_date_range(text: str, reference: datetime | date | None = None) -> tuple[date, date] | None:
    """The time window a query names, or None: a date ("on 7 May 2023", "2023-05-07", "5/7/2023"), a
    month ("in May 2023", "early May 2023": days 1-10), a week of one ("the first week of March": days 1-7),
    a year ("in 2022"), and, with a `reference` time, relative expressions ("last week", "in two weeks",
    "the past few days") and days or months without a year ("on March 3rd", "in March", "on the 19th": the
    last one before it, or the next one in a question about what is to come: "What do I have on May 3?")."""
    ref = reference.date() if isinstance(reference, datetime) else reference
    m = _ABS_DATE.search(text)
    if m:
        d = (_day(int(m.group(3)), _month_index(m.group(2)), int(m.group(1))) if m.group(1)
             else _day(int(m.group(6)), _month_index(m.group(4)), int(m.group(5))))
        if d:
            return d, d
    m = _ISO_DATE.search(text)
    if m and (d := _day(int(m.group(1)), int(m.group(2)), int(m.group(3)))):
        return d, d
    m = _NUMERIC_DATE.search(text)
    if m:
        a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
        y += 2000 if y < 100 else 0
        d = _day(y, a, b) if a <= 12 else _day(y, b, a)  # 15/3/2024 can only be day first
        if d:
            return d, d
    m = _WEEK_OF_MONTH.search(text)
    if m and (window := _week_of_month(m, ref, _query_tense(text))):
        return window
    m = _MONTH_YEAR.search(text)
    if m:
        part = re.search(rf"{_PART}$", text[: m.start()], re.I)
        return _month_window(int(m.group(2)), _month_index(m.group(1)), part.group(1) if part else None)
    if ref is not None and (window := _relative_range(text, ref)):
        return window
    m = _YEAR.search(text)
    if m:
        y = int(m.group(1))
        return date(y, 1, 1), date(y, 12, 31)
    return None
