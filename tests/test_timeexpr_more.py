"""Time expressions: what a query's tense says about a day without a year, more query windows, and more
relative times (and arrangements) in a stored turn."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from memstrata.text.timeexpr import annotate_times, find_date_range, find_time_mentions

REF = datetime(2024, 4, 26, 10, tzinfo=timezone.utc)  # a Friday


def day(y: int, m: int, d: int) -> tuple[date, date]:
    return date(y, m, d), date(y, m, d)


# 1. a day or a month without a year: the last one in a question about the past, the next one in one about
#    what is to come, the last one when the tense says nothing

@pytest.mark.parametrize("query,expected", [
    ("What do I have on May 3?", day(2024, 5, 3)),
    ("What's happening on April 30?", day(2024, 4, 30)),
    ("What appointments do I have in May?", (date(2024, 5, 1), date(2024, 5, 31))),
    ("What am I doing on June 2?", day(2024, 6, 2)),
    ("Is anything planned for May 14?", day(2024, 5, 14)),
    ("What will I do on the 3rd of March?", day(2025, 3, 3)),
    ("Where am I going on April 26?", day(2024, 4, 26)),  # the reference day itself is "on or after" it
])
def test_a_question_about_what_is_to_come_takes_the_next_day_or_month(query, expected):
    assert find_date_range(query, REF) == expected


@pytest.mark.parametrize("query,expected", [
    ("What did I do on May 3?", day(2023, 5, 3)),
    ("What was on April 30?", day(2023, 4, 30)),
    ("Where did I go in May?", (date(2023, 5, 1), date(2023, 5, 31))),
    ("What is the name of the cafe I visited on May 3?", day(2023, 5, 3)),  # a past verb beats the present
    ("on May 3", day(2023, 5, 3)),  # no tense: the last one, as before
    ("in June", (date(2023, 6, 1), date(2023, 6, 30))),
])
def test_a_question_about_the_past_or_without_a_tense_takes_the_last_one(query, expected):
    assert find_date_range(query, REF) == expected


def test_the_month_of_the_reference_day_is_that_month_either_way():
    april = (date(2024, 4, 1), date(2024, 4, 30))
    assert find_date_range("What did I do in April?", REF) == find_date_range("What do I have in April?", REF) == april


# 2. more query windows, each counted from the reference day

@pytest.mark.parametrize("query,expected", [
    ("What do I have in two weeks?", (date(2024, 5, 6), date(2024, 5, 12))),  # that week
    ("What happens in 3 days?", day(2024, 4, 29)),  # that day
    ("What am I doing in the next few days?", (date(2024, 4, 26), date(2024, 5, 3))),
    ("Anything in the coming days?", (date(2024, 4, 26), date(2024, 5, 3))),
    ("What's coming up?", (date(2024, 4, 26), date(2024, 5, 3))),
    ("Any upcoming appointments?", (date(2024, 4, 26), date(2024, 5, 3))),
    ("the next 3 days", (date(2024, 4, 26), date(2024, 4, 29))),
])
def test_windows_ahead(query, expected):
    assert find_date_range(query, REF) == expected


@pytest.mark.parametrize("query,expected", [
    ("What did I eat in the past two weeks?", (date(2024, 4, 12), date(2024, 4, 26))),
    ("What did I do the last 3 days?", (date(2024, 4, 23), date(2024, 4, 26))),
    ("Who did I see the past few days?", (date(2024, 4, 19), date(2024, 4, 26))),
    ("What did I do two weekends ago?", (date(2024, 4, 13), date(2024, 4, 14))),
    ("the weekend before last", (date(2024, 4, 13), date(2024, 4, 14))),
    ("the week before last", (date(2024, 4, 8), date(2024, 4, 14))),
])
def test_windows_behind(query, expected):
    assert find_date_range(query, REF) == expected


@pytest.mark.parametrize("query,expected", [
    ("What did I do on the 19th?", day(2024, 4, 19)),  # this month's, not after the reference day
    ("What happened on the 30th?", day(2024, 3, 30)),  # this month's is still to come: last month's
    ("What do I have on the 19th?", day(2024, 5, 19)),  # to come: the next 19th
    ("What's planned on the 26th?", day(2024, 4, 26)),
])
def test_a_day_of_the_month_alone(query, expected):
    assert find_date_range(query, REF) == expected


@pytest.mark.parametrize("query,expected", [
    ("this spring", (date(2024, 3, 1), date(2024, 5, 31))),
    ("this summer", (date(2024, 6, 1), date(2024, 8, 31))),
    ("next winter", (date(2024, 12, 1), date(2025, 2, 28))),
    ("last summer", (date(2023, 6, 1), date(2023, 8, 31))),
    ("the first week of March", (date(2024, 3, 1), date(2024, 3, 7))),
    ("the third week of March 2023", (date(2023, 3, 15), date(2023, 3, 21))),
    ("the last week of February", (date(2024, 2, 23), date(2024, 2, 29))),
    ("What did I do in early May?", (date(2023, 5, 1), date(2023, 5, 10))),
    ("mid-May", (date(2023, 5, 11), date(2023, 5, 20))),
    ("What am I doing in late May?", (date(2024, 5, 21), date(2024, 5, 31))),
    ("late February 2023", (date(2023, 2, 21), date(2023, 2, 28))),
])
def test_seasons_weeks_and_parts_of_a_month(query, expected):
    assert find_date_range(query, REF) == expected


@pytest.mark.parametrize("query", ["What did I order on the 3rd floor?", "What does she like?", "you may 2x it"])
def test_what_names_no_window_stays_without_one(query):
    assert find_date_range(query, REF) is None


def test_a_bare_weekday_in_a_question_follows_its_tense():
    assert find_date_range("What am I doing on Saturday?", REF) == day(2024, 4, 27)
    assert find_date_range("What did I do on Saturday?", REF) == day(2024, 4, 20)


# 3. a bare weekday in a turn: arrangements are about what is to come

@pytest.mark.parametrize("text,expected", [
    ("I'm flying to Dublin on Tuesday.", "on Tuesday (30 April 2024)"),
    ("Ana has a vet appointment on Monday.", "on Monday (29 April 2024)"),
    ("Calendar: Mom's birthday dinner at Luigi's on Saturday at 7pm.", "on Saturday (27 April 2024) at 7pm"),
    ("Dentist appointment on Wednesday.", "on Wednesday (1 May 2024)"),
    # said on a Friday, "on Friday" of an arrangement is the next one, a week later
    ("I'm driving to Leeds on Friday.", "on Friday (3 May 2024)"),
    ("We went hiking on Friday.", "on Friday (19 April 2024)"),  # the past stays the past
    ("She had a vet appointment on Monday.", "on Monday (22 April 2024)"),
])
def test_arrangements_date_a_bare_weekday_ahead(text, expected):
    assert expected in annotate_times(text, REF)[0]


@pytest.mark.parametrize("text", [
    "See you on Sunday at the park.", "The shop is closed on Sunday.", "We are meeting on Monday.",
    "The regatta in Cascais starts at nine on Sunday.", "Pottery class on Saturday, pottery is fun",
    "I need a rest on Sunday.",  # "need" is no verb in -ed
])
def test_a_bare_weekday_without_a_tense_or_an_arrangement_stays_undated(text):
    assert annotate_times(text, REF)[0] == text


# 4. more relative times in a turn

@pytest.mark.parametrize("text,expected", [
    ("We moved two weekends ago.", "two weekends ago (the weekend of 13 April 2024)"),
    ("We met the weekend before last.", "the weekend before last (the weekend of 13 April 2024)"),
    ("I saw her a few weeks back.", "a few weeks back (the week of 1 April 2024)"),
    ("We were in Lisbon back in March.", "back in March (March 2024)"),
    ("We went to Paris in May.", "in May (May 2023)"),  # a past turn: the last May before the event day
    ("I'm going to Rome in June.", "in June (June 2024)"),  # to come: the next June
    ("I'll know the results in two weeks.", "in two weeks (the week of 6 May 2024)"),
    ("I will call you in 3 days.", "in 3 days (29 April 2024)"),
    ("I've run every morning the past two weeks.", "the past two weeks (12 April 2024 to 26 April 2024)"),
    ("I'll be away the next few days.", "the next few days (26 April 2024 to 3 May 2024)"),
])
def test_more_relative_times_in_a_turn(text, expected):
    assert expected in annotate_times(text, REF)[0]


@pytest.mark.parametrize("text", [
    "I read the whole book in three days.",  # a duration in the past
    "I usually finish a book in two weeks.",  # a habit
    "My bakery course in Porto finishes in March.",  # a month without a tense to read it by
    "I was born in May.",  # not a recent May
    "My upcoming trip is great.",  # "upcoming" is a window for a query, not a date in a turn
    "I may go.",
])
def test_what_a_turn_does_not_date(text):
    assert find_time_mentions(text, REF) == []


def test_a_present_perfect_is_not_an_arrangement():
    text = "The party on Saturday has been great fun."
    assert annotate_times(text, REF)[0] == text


@pytest.mark.parametrize("text,expected", [
    ("I've got a match on Sunday.", "on Sunday (28 April 2024)"),  # "have got": a possession, not a past
    ("I got a parking ticket on Monday.", "on Monday (22 April 2024)"),
])
def test_have_got_is_a_present(text, expected):
    assert expected in annotate_times(text, REF)[0]


def test_have_got_in_a_question_looks_ahead():
    assert find_date_range("What have I got on May 3?", REF) == day(2024, 5, 3)
