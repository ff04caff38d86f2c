"""Deterministic synthetic memories: varied sentences about people, places, activities and dates.

Not random tokens: sentences read like what an assistant hears ("Priya moved to
Porto in March 2022 and started a job as a nurse."), so lexical statistics
(term frequencies, shared names) and the distribution of their embeddings
resemble real chat memory. Everything is generated from a seed with
`random.Random`, so the same seed gives the same text on every machine.

Scale runs need far more memories than a CPU can embed in reasonable time, so a
memory is a *pair* of pool sentences (`memory_pair`): the pool (a few thousand
distinct sentences) is embedded once with the real model, and a memory's vector
is the normalised sum of its two sentences' vectors. That keeps every vector
distinct and distributed like real embeddings (clustered, anisotropic), which is
what nearest-neighbour search is sensitive to, at no model cost per memory.
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

import numpy as np

from .. import timeutil

NAMES = (
    "Ana Caroline Melanie Priya Tomasz Kenji Amara Lucas Sofia Mateo Olivia Noah Leila Omar Chen Mei Ravi Hannah "
    "Jonas Elena Diego Fatima Yusuf Ingrid Pablo Aisha Liam Chloe Ethan Nadia Hugo Zara Felix Maya Arjun Clara "
    "Samuel Ines Victor Lena Mohammed Grace Daniel Rosa Kofi Emma Oscar Yara Theo Nina Rafael Julia Marcus Alice "
    "Sebastian Freya Gabriel Anika Leo Iris"
).split()
CITIES = (
    "Lisbon Porto Berlin Kyoto Nairobi Toronto Austin Denver Melbourne Oslo Seoul Lagos Madrid Prague Dublin "
    "Vancouver Boston Chicago Mumbai Bangalore Istanbul Athens Vienna Warsaw Montreal Seattle Portland Lima Bogota "
    "Santiago Cairo Marrakesh Helsinki Reykjavik Edinburgh Glasgow Naples Florence Budapest Krakow"
).split()
VENUES = (
    "the farmers market", "the climbing gym", "a jazz bar", "the public library", "the community garden",
    "a pottery studio", "the art museum", "the botanical garden", "a small bakery", "the swimming pool",
    "the yoga studio", "a board game cafe", "the concert hall", "the dog park", "the science museum",
    "a ramen place", "the bookshop on the corner", "the marathon expo", "the beach", "a hiking trail",
)
ACTIVITIES = (
    "hiking", "painting", "running a half marathon", "learning Spanish", "baking sourdough", "playing the violin",
    "rock climbing", "volunteering at a shelter", "writing a novel", "training for a triathlon", "knitting",
    "photography", "birdwatching", "salsa dancing", "camping", "surfing", "gardening", "chess", "woodworking",
    "learning to code", "kayaking", "skiing", "meditation", "cooking Thai food", "playing guitar",
    "restoring an old bike", "journaling", "pottery", "sketching", "swimming",
)
JOBS = (
    "nurse", "software engineer", "teacher", "architect", "chef", "paramedic", "graphic designer", "accountant",
    "electrician", "librarian", "pharmacist", "journalist", "data analyst", "carpenter", "social worker",
    "veterinarian", "pilot", "translator", "physiotherapist", "barista",
)
RELATIONS = (
    "sister", "brother", "mother", "father", "best friend", "cousin", "neighbour", "colleague", "grandmother",
    "roommate", "partner", "mentor", "aunt", "uncle", "son", "daughter",
)
PETS = ("a puppy", "two cats", "a rescue dog", "a parrot", "a rabbit", "a goldfish", "a tortoise", "a kitten")
FOODS = (
    "a spicy curry", "homemade pasta", "a lemon tart", "grilled sardines", "vegetable dumplings", "a mushroom risotto",
    "banana bread", "fish tacos", "a lentil soup", "pancakes with berries",
)
FEELINGS = ("thrilled", "exhausted", "nervous", "proud", "relieved", "grateful", "anxious", "excited", "calm", "overwhelmed")
OBJECTS = (
    "a new laptop", "a vintage camera", "a second-hand piano", "hiking boots", "a bicycle", "a telescope",
    "a sewing machine", "a tent", "an espresso machine", "a painting of the sea", "noise-cancelling headphones",
)
BOOKS = (
    "Becoming", "Sapiens", "The Hobbit", "Dune", "Educated", "Circe", "The Overstory", "Atomic Habits",
    "Project Hail Mary", "Little Women", "Pachinko", "The Road",
)

TEMPLATES = (
    "{name} went {activity} near {city} {when} and said it was the best part of the month.",
    "{name} moved to {city} {when} and started a job as a {job}.",
    "{name}'s {relation} visited from {city} {when}; they spent the afternoon at {venue}.",
    "{name} adopted {pet} {when} and named it after a character from {book}.",
    "{name} has been {activity} every weekend since {month} {year}.",
    "{name} felt {feeling} before the interview for the {job} position {when}.",
    "{name} cooked {food} for {name2} {when} to celebrate the new apartment.",
    "{name} bought {object} {when} because the old one broke during a trip to {city}.",
    "{name} finished reading {book} {when} and recommended it to {name2}.",
    "{name} and {name2} met at {venue} in {city} {when}.",
    "{name} is planning to visit {city} in {month} to see an old {relation}.",
    "{name} signed up for a class on {activity} at {venue} {when}.",
    "{name} told {name2} that {activity} helps with stress after long shifts as a {job}.",
    "{name} lost a wallet at {venue} {when} and a stranger returned it the next day.",
    "{name}'s {relation} got married in {city} {when}, and {name} gave a speech.",
    "{name} ran {number} kilometres {when}, a personal best.",
    "{name} volunteered at {venue} {when} and met a {job} who became a friend.",
    "{name} prefers {food} over takeaway and cooks it most Sundays.",
    "{name} was {feeling} after {name2} forgot their plans at {venue} {when}.",
    "{name} started saving for a trip to {city} {when}; the goal is {number} hundred euros.",
    "{name} keeps a photo from {city} on the fridge, taken {when} with a {relation}.",
    "{name} quit the {job} job {when} to focus on {activity}.",
    "{name} celebrated a birthday at {venue} {when} with {number} friends.",
    "{name} and a {relation} drove to {city} {when} for a concert.",
    "{name} has been learning about {activity} from videos by a {job} in {city}.",
    "{name} said {name2} gave great advice about becoming a {job}.",
    "{name} repaired {object} {when} with help from a {relation}.",
    "{name} is allergic to cats, so visits to the {relation}'s house are short.",
    "{name} joined a book club at {venue}; the first pick was {book}.",
    "{name} hurt an ankle while {activity} {when} and had to rest for {number} weeks.",
)
QUESTION_TEMPLATES = (
    "When did {name} start {activity}?",
    "Where did {name} move to?",
    "What job did {name} start in {city}?",
    "Who visited {name} from {city}?",
    "What pet did {name} adopt?",
    "What book did {name} recommend to {name2}?",
    "What did {name} cook for {name2}?",
    "Where did {name} and {name2} meet?",
    "Why did {name} buy {object}?",
    "How far did {name} run?",
    "What is {name} planning in {month}?",
    "What class did {name} sign up for at {venue}?",
    "How does {name} deal with stress?",
    "What happened at {name}'s {relation}'s wedding?",
    "What does {name} like to cook on Sundays?",
)
MONTHS = [m.capitalize() for m in timeutil.MONTHS]
WEEKDAYS = ("Monday Tuesday Wednesday Thursday Friday Saturday Sunday").split()
START = date(2019, 1, 1)
DAYS = (date(2025, 12, 31) - START).days


def _when(rng: random.Random) -> str:
    d = START + timedelta(days=rng.randrange(DAYS))
    form = rng.randrange(7)
    if form == 0:
        return f"on {d.day} {MONTHS[d.month - 1]} {d.year}"
    if form == 1:
        return f"in {MONTHS[d.month - 1]} {d.year}"
    if form == 2:
        return f"last {WEEKDAYS[d.weekday()]}"
    if form == 3:
        return rng.choice(("yesterday", "last week", "two weeks ago", "last month", "this morning", "last weekend"))
    if form == 4:
        return f"on {d.isoformat()}"
    if form == 5:
        return f"the weekend before {MONTHS[d.month - 1]} {d.day}"
    return f"in the summer of {d.year}"


def _fill(template: str, rng: random.Random) -> str:
    name, name2 = rng.sample(NAMES, 2)
    slots = {
        "name": name,
        "name2": name2,
        "city": rng.choice(CITIES),
        "venue": rng.choice(VENUES),
        "activity": rng.choice(ACTIVITIES),
        "job": rng.choice(JOBS),
        "relation": rng.choice(RELATIONS),
        "pet": rng.choice(PETS),
        "food": rng.choice(FOODS),
        "feeling": rng.choice(FEELINGS),
        "object": rng.choice(OBJECTS),
        "book": rng.choice(BOOKS),
        "month": rng.choice(MONTHS),
        "year": str(rng.randrange(2015, 2026)),
        "number": str(rng.randrange(2, 43)),
        "when": _when(rng),
    }
    return template.format(**slots)


def sentences(n: int, seed: int = 7) -> list[str]:
    """`n` distinct sentences, the same for the same seed."""
    rng = random.Random(f"memstrata-synth-{seed}")
    out: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n:
        s = _fill(rng.choice(TEMPLATES), rng)
        attempts += 1
        if s not in seen:
            seen.add(s)
            out.append(s)
        if attempts > 50 * n + 1000:  # pragma: no cover - the template space is far larger than any pool
            raise RuntimeError(f"could not generate {n} distinct sentences")
    return out


def questions(n: int, seed: int = 7) -> list[str]:
    """`n` questions in the style of the sentences (names, places, activities), deterministic."""
    rng = random.Random(f"memstrata-synth-q-{seed}")
    return [_fill(rng.choice(QUESTION_TEMPLATES), rng) for _ in range(n)]


class PairIndex:
    """Memory i -> a distinct (a, b) pair of pool sentences, a bijection for i < pool**2."""

    def __init__(self, pool: int, seed: int = 7) -> None:
        if pool < 2:
            raise ValueError("pool must hold at least 2 sentences")
        self.pool = pool
        self.space = pool * pool
        rng = random.Random(f"memstrata-pairs-{seed}")
        stride = rng.randrange(self.space // 3, self.space)
        while math.gcd(stride, self.space) != 1:
            stride += 1
        self.stride = stride
        self.offset = rng.randrange(self.space)

    def pair(self, i: int) -> tuple[int, int]:
        if not 0 <= i < self.space:
            raise ValueError(f"memory index {i} outside 0..{self.space - 1} (a pool of {self.pool} gives {self.space} pairs)")
        k = (i * self.stride + self.offset) % self.space
        return k // self.pool, k % self.pool

    def pairs(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised `pair` over memory indices start..stop-1."""
        return self.pairs_at(np.arange(start, stop, dtype=np.int64))

    def pairs_at(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised `pair` over an array of memory indices."""
        i = np.asarray(indices, dtype=np.int64)
        k = (i * self.stride + self.offset) % self.space  # fits int64 for any pool and N a store holds
        return k // self.pool, k % self.pool


def memory_text(pool_sentences: list[str], a: int, b: int) -> str:
    """The text of the memory made of pool sentences a and b."""
    return pool_sentences[a] if a == b else f"{pool_sentences[a]} {pool_sentences[b]}"


def pair_vectors(pool_vectors: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """L2-normalised sums of pool vectors a[j] + b[j] (float32)."""
    v = pool_vectors[a] + pool_vectors[b]
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), np.float32(1e-12))
    return v.astype(np.float32, copy=False)


def event_times(start: int, stop: int, seed: int = 7) -> np.ndarray:
    """Epoch seconds for memories start..stop-1, spread evenly over 2019-2025, deterministic."""
    i = np.arange(start, stop, dtype=np.float64)
    base = 1546300800.0  # 2019-01-01T00:00:00Z
    span = 7 * 365 * 86400.0
    # A golden-ratio sequence spreads any index range evenly over the span.
    frac = np.mod(i * 0.6180339887498949 + (seed % 1000) / 1000.0, 1.0)
    return base + frac * span
