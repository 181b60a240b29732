"""Short arithmetic word problems, some missing a quantity on purpose: ask exactly when needed.

A fraction of tasks (``unspecified_rate``) replace one quantity with "some"; no answer is
then right and the best move is an ``<ask>`` naming the missing quantity. Every quantity
has its own keyword noun, chosen so a natural question about one names no other, and a
question is judged by which keywords it names. Difficulty sets how many quantities (and so
operations) a problem has and how large its numbers are.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import replace
from typing import NamedTuple

from envs.arithmetic import check_integer
from envs.base import Environment, Task, Verdict, make_task

# level -> (quantities, smallest number, largest number, most friends when sharing)
LEVELS = {1: (2, 2, 9, 5), 2: (3, 2, 20, 6), 3: (4, 10, 99, 9)}
NAMES = (("Tom", "he"), ("Ann", "she"), ("Sam", "he"), ("Mia", "she"), ("Ben", "he"))
# Nouns are (singular, plural). No noun in a list is a form of another, so keywords never clash.
FRUITS = (("apple", "apples"), ("pear", "pears"), ("plum", "plums"), ("fig", "figs"))
TOYS = (("car", "cars"), ("ball", "balls"), ("doll", "dolls"), ("kite", "kites"), ("drum", "drums"))
ITEMS = (("pen", "pens"), ("cup", "cups"), ("hat", "hats"), ("book", "books"), ("mug", "mugs"))
RIDERS = (("boy", "boys"), ("girl", "girls"), ("man", "men"), ("woman", "women"))
TREATS = (("sweet", "sweets"), ("cake", "cakes"), ("bun", "buns"), ("cookie", "cookies"))
SEAT, FRIEND = ("seat", "seats"), ("friend", "friends")
_SINGULAR = {p: s for s, p in FRUITS + TOYS + ITEMS + RIDERS + TREATS + (SEAT, FRIEND)}
UNCLEAR = "I can't tell which number you mean."
_WORD = re.compile(r"[a-z]+")
_SOME = re.compile(r"\b[Ss]ome\b")


class _Story(NamedTuple):
    template: str
    keywords: list[str]
    """The plural noun that names each quantity."""
    values: list[int]
    render: Callable[[list[str]], str]
    """Amounts ("5", or "some" for the missing one) -> prompt."""
    asks: list[str]
    """The ideal question about each quantity."""
    facts: list[str]
    """The sentence that gives each quantity, for ``respond``."""
    steps: list[str]
    answer: int


class Clarify(Environment):
    name = "clarify"
    levels = tuple(LEVELS)

    def __init__(self, unspecified_rate: float = 0.3):
        if not isinstance(unspecified_rate, (int, float)) or not 0 <= unspecified_rate <= 1:
            raise ValueError(
                f"environment 'clarify': unspecified_rate must be in [0, 1], got {unspecified_rate!r}"
            )
        self.unspecified_rate = unspecified_rate

    def generate(self, rng: random.Random, difficulty: int) -> Task:
        """A word problem with ``level + 1`` quantities; one is vague at ``unspecified_rate``."""
        count = LEVELS[difficulty][0]
        name, pronoun = rng.choice(NAMES)
        story = rng.choice(_TEMPLATES)(rng, LEVELS[difficulty], name, pronoun)
        amounts = [str(v) for v in story.values]
        missing = hidden = None
        # random() < 1 always holds, so rate 1 leaves every task underspecified.
        if rng.random() < self.unspecified_rate:
            index = rng.randrange(count)
            amounts[index], missing, hidden = "some", story.keywords[index], story.values[index]
        return make_task(
            story.render(amounts),
            None if missing else str(story.answer),
            specified=missing is None,
            template=story.template,
            keywords=story.keywords,
            values=story.values,
            missing=missing,
            hidden=hidden,
            asks=story.asks,
            facts=story.facts,
            steps=story.steps,
        )

    def check(self, answer: str, task: Task) -> Verdict:
        """Exact integer match against the answer of a fully specified task."""
        return check_integer(answer, task)

    def check_question(self, question: str, task: Task) -> Verdict:
        """Full marks only for naming the missing quantity and no other one."""
        if task.specified:
            return Verdict(0.0, "ask", question, "asked_when_specified")
        named = _named(question, task.metadata["keywords"])
        if named == [task.metadata["missing"]]:
            return Verdict(1.0, "ask", question, "asked_missing")
        return Verdict(0.0, "ask", question, "asked_wrong_quantity" if named else "asked_vaguely")

    def target(self, task: Task) -> str:
        """The answer tag, or for an underspecified task the ideal question about what is missing."""
        if task.specified:
            return super().target(task)
        index = task.metadata["keywords"].index(task.metadata["missing"])
        return f"<ask>{task.metadata['asks'][index]}</ask>"

    def solution(self, task: Task) -> list[str]:
        """Worked sums, or a single note of which quantity is unknown."""
        if task.specified:
            return list(task.metadata["steps"])
        return [f"{task.metadata['missing']} unknown"]

    def respond(self, task: Task, question: str) -> str:
        """Give the quantity a question names (the missing one first), else a fixed non-answer."""
        keywords, facts = task.metadata["keywords"], task.metadata["facts"]
        named = _named(question, keywords)
        if task.metadata["missing"] in named:
            named = [task.metadata["missing"]]
        if not named:
            return UNCLEAR
        return " ".join(facts[keywords.index(k)] for k in named)

    def resolve(self, task: Task, reply: str) -> Task:
        """Once a reply has given the missing quantity, the task is the fully specified one.

        The prompt gets the amount in place of "some" (the very prompt the task would have had
        unspecified_rate 0) and the answer is the last worked step's result; the id gets a
        ``+resolved`` suffix. Any other reply, or a specified task, leaves the task unchanged.
        """
        if task.specified:
            return task
        meta = task.metadata
        fact = meta["facts"][meta["keywords"].index(meta["missing"])]
        if fact not in reply:
            return task
        prompt, filled = _SOME.subn(str(meta["hidden"]), task.prompt, count=1)
        return replace(
            task,
            task_id=f"{task.task_id}+resolved",
            prompt=prompt if filled else f"{task.prompt} {fact}",
            answer=meta["steps"][-1].rsplit("=", 1)[1],
            specified=True,
            metadata={**meta, "missing": None, "hidden": None},
        )


def _named(question: str, keywords: list[str]) -> list[str]:
    """The keywords a question names as whole words, singular or plural, in keyword order."""
    words = set(_WORD.findall(question.lower()))
    # A keyword outside the noun lists (a hand-built task) falls back to dropping a final "s".
    return [k for k in keywords if words & {k, _SINGULAR.get(k, k.removesuffix("s"))}]


def _listing(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _chain(values: list[int], op: str) -> tuple[list[str], int]:
    steps, total = [], values[0]
    for v in values[1:]:
        new = total + v if op == "+" else total - v
        steps.append(f"{total}{op}{v}={new}")
        total = new
    return steps, total


def _total(rng: random.Random, level: tuple[int, ...], name: str, pronoun: str) -> _Story:
    count, lo, hi, most = level
    group, nouns = rng.choice((("fruits", FRUITS), ("toys", TOYS)))
    plurals = [p for _, p in rng.sample(nouns, count)]
    values = [rng.randint(lo, hi) for _ in plurals]

    def total(amounts: list[str]) -> str:
        have = _listing([f"{a} {p}" for a, p in zip(amounts, plurals, strict=True)])
        return f"{name} has {have}. How many {group} does {pronoun} have?"

    asks = [f"How many {p} does {name} have?" for p in plurals]
    facts = [f"{name} has {v} {p}." for v, p in zip(values, plurals, strict=True)]
    return _Story("total", plurals, values, total, asks, facts, *_chain(values, "+"))


def _shop(rng: random.Random, level: tuple[int, ...], name: str, pronoun: str) -> _Story:
    count, lo, hi, most = level
    items = rng.sample(ITEMS, count)
    values = [rng.randint(lo, hi) for _ in items]

    def shop(amounts: list[str]) -> str:
        paid = [f"{a} for a {s}" for a, (s, _) in zip(amounts, items, strict=True)]
        paid[0] = paid[0].replace(" for", " coins for", 1)
        return f"{name} pays {_listing(paid)}. How many coins in all?"

    asks = [f"How much does the {s} cost?" for s, _ in items]
    facts = [f"The {s} costs {v} coins." for v, (s, _) in zip(values, items, strict=True)]
    return _Story("shop", [p for _, p in items], values, shop, asks, facts, *_chain(values, "+"))


def _bus(rng: random.Random, level: tuple[int, ...], name: str, pronoun: str) -> _Story:
    count, lo, hi, most = level
    riders = [p for _, p in rng.sample(RIDERS, count - 1)]
    people = [rng.randint(lo, hi) for _ in riders]
    # Spare seats keep the answer positive, so every step is plain subtraction.
    values = [sum(people) + rng.randint(lo, hi)] + people

    def bus(amounts: list[str]) -> str:
        boarding = _listing([f"{a} {p}" for a, p in zip(amounts[1:], riders, strict=True)])
        boarding = boarding[0].upper() + boarding[1:]
        return f"A bus has {amounts[0]} seats. {boarding} get on. How many seats are empty?"

    asks = ["How many seats does the bus have?"] + [f"How many {p} get on?" for p in riders]
    facts = [f"The bus has {values[0]} seats."]
    facts += [f"{v} {p} get on." for v, p in zip(people, riders, strict=True)]
    return _Story("bus", ["seats"] + riders, values, bus, asks, facts, *_chain(values, "-"))


def _share(rng: random.Random, level: tuple[int, ...], name: str, pronoun: str) -> _Story:
    count, lo, hi, most = level
    treats = [p for _, p in rng.sample(TREATS, count - 1)]
    friends = rng.randint(2, most)
    while True:  # redraw until the treats split evenly; at worst 1 in `most` draws fits
        treat_values = [rng.randint(lo, hi) for _ in treats]
        if sum(treat_values) % friends == 0:
            break
    steps, total = _chain(treat_values, "+")
    steps.append(f"{total}/{friends}={total // friends}")

    def share(amounts: list[str]) -> str:
        shared = _listing([f"{a} {p}" for a, p in zip(amounts[:-1], treats, strict=True)])
        return f"{name} shares {shared} among {amounts[-1]} friends. How many does each get?"

    asks = [f"How many {p} does {name} share?" for p in treats] + ["How many friends are there?"]
    facts = [f"{name} shares {v} {p}." for v, p in zip(treat_values, treats, strict=True)]
    facts.append(f"There are {friends} friends.")
    values = treat_values + [friends]
    return _Story(
        "share", treats + ["friends"], values, share, asks, facts, steps, total // friends
    )


_TEMPLATES = (_total, _shop, _bus, _share)
