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


_NUM = r"(\d+|a couple of|a few|couple of|few|several|an?|one|two|three|four|five|six|seven|eight|nine|ten)"
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"\b{_NUM}\s+(day|week|month|year)s?\s+ago\b", re.I), "ago"),
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
]


#: What tells, in the sentence around a bare weekday ("on Saturday"), whether it is past or to come.
_FUTURE = re.compile(r"\b(?:will|won['’]t|shall|gonna|going to|plan(?:s|ning)? to|hope to|can['’]t wait|looking forward|"
                     r"next|tomorrow|upcoming|coming up)\b|['’]ll\b", re.I)
_PAST = re.compile(r"\b(?:was|were|went|had|did|got|made|took|saw|came|met|threw|won|ran|gave|bought|found|told|said|"
                   r"left|began|ate|drank|wrote|felt|spent|brought|caught|flew)\b", re.I)
#: A word in -ed is a past verb unless the sentence is in the present ("The shop is closed on Sunday").
_PAST_ED = re.compile(r"\b\w{2,}ed\b", re.I)
_PRESENT = re.compile(r"\b(?:is|are|am)\b|['’](?:m|re|s)\b", re.I)


def _tense(text: str, start: int, end: int) -> str | None:
    """"future", "past" or None for the sentence of `text` around `start:end`."""
    lo = max((text.rfind(c, 0, start) for c in ".!?"), default=-1) + 1
    his = [i for i in (text.find(c, end) for c in ".!?") if i >= 0]
    sentence = text[lo : min(his) if his else len(text)]
    if _FUTURE.search(sentence):
        return "future"
    if _PAST.search(sentence) or (_PAST_ED.search(sentence) and not _PRESENT.search(sentence)):
        return "past"
    return None


def _number(text: str) -> int:
    text = text.lower().strip()
    return int(text) if text.isdigit() else _NUM_WORDS.get(text, 1)


def _resolve(kind: str, match: re.Match[str], ref: date) -> tuple[str, date, date] | None:
    if kind == "ago":
        n, unit = _number(match.group(1)), match.group(2).lower()
        if unit == "day":
            d = ref - timedelta(days=n)
            return fmt_day(d), d, d
        if unit == "week":
            d = ref - timedelta(weeks=n)
            return f"the week of {fmt_day(d - timedelta(days=d.weekday()))}", d - timedelta(days=d.weekday()), d
        if unit == "month":
            y, m = _add_months(ref, -n)
            return fmt_month(y, m), date(y, m, 1), month_end(y, m)
        return str(ref.year - n), date(ref.year - n, 1, 1), date(ref.year - n, 12, 31)
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
        on_weekend = ref.weekday() >= 5
        sat = ref - timedelta(days=ref.weekday() - 5) if on_weekend else ref + timedelta(days=5 - ref.weekday())
        if kind == "last_weekend":
            sat -= timedelta(days=7)
        elif kind == "next_weekend" and on_weekend:
            sat += timedelta(days=7)
        sun = sat + timedelta(days=1)
        return f"the weekend of {fmt_day(sat)}", sat, sun
    if kind in ("last_weekday", "on_weekday", "next_weekday"):
        # the weekday before the reference day (last), or after it (next); "on Saturday": before in a
        # sentence about the past, after in one about what is to come, none without a tense
        tense = {"last_weekday": "past", "next_weekday": "future"}.get(kind) or _tense(
            match.string, match.start(), match.end())
        if tense is None:
            return None
        wd = _WEEKDAYS.index(match.group(2).lower())
        if tense == "past":
            d = ref - timedelta(days=(ref.weekday() - wd) % 7 or 7)
        else:
            d = ref + timedelta(days=(wd - ref.weekday()) % 7 or 7)
        return fmt_day(d), d, d
    if kind in ("last_week", "next_week", "this_week"):
        shift = {"last_week": -7, "next_week": 7, "this_week": 0}[kind]
        monday = ref - timedelta(days=ref.weekday()) + timedelta(days=shift)
        return f"the week of {fmt_day(monday)}", monday, monday + timedelta(days=6)
    if kind in ("last_month", "next_month", "this_month"):
        y, m = _add_months(ref, {"last_month": -1, "next_month": 1, "this_month": 0}[kind])
        return fmt_month(y, m), date(y, m, 1), month_end(y, m)
    if kind in ("last_year", "next_year", "this_year"):
        y = ref.year + {"last_year": -1, "next_year": 1, "this_year": 0}[kind]
        return str(y), date(y, 1, 1), date(y, 12, 31)
    if kind == "last_season":
        season = match.group(2).lower()
        start_month = {"spring": 3, "summer": 6, "fall": 9, "autumn": 9, "winter": 12}[season]
        y = ref.year if ref.month > start_month + 2 else ref.year - 1
        ey, em = _add_months(date(y, start_month, 1), 2)  # three months; winter ends in the next year
        return f"{season} {y}", date(y, start_month, 1), month_end(ey, em)
    return None


def find_time_mentions(text: str, reference: datetime | date) -> list[TimeMention]:
    """Relative time expressions in `text`, resolved against `reference`, without overlaps."""
    ref = reference.date() if isinstance(reference, datetime) else reference
    found: list[TimeMention] = []
    taken: list[tuple[int, int]] = []
    for pattern, kind in _PATTERNS:
        for m in pattern.finditer(text):
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            resolved = _resolve(kind, m, ref)
            if resolved is None:
                continue
            label, first, last = resolved
            found.append(TimeMention(m.start(), m.end(), m.group(0), label, first, last))
            taken.append((m.start(), m.end()))
    return sorted(found, key=lambda t: t.start)


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
#: reference day; a month alone after a preposition ("in March", "since early April") likewise.
_DAY_MONTH = re.compile(
    rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\b|\b{_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?![:\d])", re.I)
_MONTH_ALONE = re.compile(
    rf"\b(?:in|during|since|throughout|of|early|late|mid-?)\s+(?:early\s+|late\s+|mid-?)?{_MONTH}\b", re.I)
_YEAR = re.compile(r"\b(19\d{2}|20\d{2})\b")


def _day(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _month_index(name: str) -> int:
    return MONTHS.index(name.lower()) + 1


def find_date_range(text: str, reference: datetime | date | None = None) -> tuple[date, date] | None:
    """The time window a query names, or None: a date ("on 7 May 2023", "2023-05-07", "5/7/2023"), a
    month ("in May 2023"), a year ("in 2022"), and, with a `reference` time, relative expressions ("last
    week") and days or months without a year ("on March 3rd", "in March": the last one before it)."""
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
    m = _MONTH_YEAR.search(text)
    if m:
        y, mo = int(m.group(2)), _month_index(m.group(1))
        return date(y, mo, 1), month_end(y, mo)
    if reference is not None:
        ref = reference.date() if isinstance(reference, datetime) else reference
        m = next((m for m in _DAY_MONTH.finditer(text) if "may" not in m.group(0)), None)  # "you may 2x it"
        if m:
            mo, day = (_month_index(m.group(2)), int(m.group(1))) if m.group(1) else (
                _month_index(m.group(3)), int(m.group(4)))
            d = _day(ref.year, mo, day)
            if d and d > ref:
                d = _day(ref.year - 1, mo, day)
            if d:
                return d, d
        mentions = find_time_mentions(text, ref)
        if mentions:
            return mentions[0].first, mentions[0].last
        m = _MONTH_ALONE.search(text)
        if m:
            mo = _month_index(m.group(1))
            y = ref.year if mo <= ref.month else ref.year - 1
            return date(y, mo, 1), month_end(y, mo)
    m = _YEAR.search(text)
    if m:
        y = int(m.group(1))
        return date(y, 1, 1), date(y, 12, 31)
    return None
