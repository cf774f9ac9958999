"""Exchange generators for facts, repeat, memory, JSON and refusal tasks.

Each returns new messages; assistant turns are tagged with a family.
"""

from __future__ import annotations

import json
import random
from typing import Any

from training.chat import Exchange, Split
from training.sampling import assistant, draw_pair, draw_word, pick_entity, user, vary
from training.tables import (
    CAPITALS,
    CITIES,
    COLOUR_MIXES,
    COLOURS,
    DAYS,
    HARMFUL_ACTIONS,
    HARMFUL_TEMPLATES,
    MONTHS,
    NAMES,
    REFUSAL,
    THING_COLOURS,
    UNITS,
)
from training.tasks import arithmetic, counting, greeting


def facts(rng: random.Random, split: Split) -> Exchange:
    kind = rng.choice(("capital", "capital", "capital", "day", "month", "thing", "mix", "unit"))
    if kind == "capital":
        country = rng.choice(sorted(CAPITALS))
        q = rng.choice(
            (
                "What is the capital of {c}?",
                "What's the capital of {c}?",
                "Name the capital of {c}.",
                "Which city is the capital of {c}?",
                "Capital of {c}?",
            )
        )
        q, answer = q.format(c=country), f"The capital of {country} is {CAPITALS[country]}."
    elif kind == "day":
        i = rng.randrange(7)
        if rng.random() < 0.5:
            q = rng.choice(
                (
                    "What day comes after {d}?",
                    "Which day follows {d}?",
                    "What is the day after {d}?",
                )
            ).format(d=DAYS[i])
            answer = f"The day after {DAYS[i]} is {DAYS[(i + 1) % 7]}."
        else:
            q = rng.choice(("What day comes before {d}?", "What is the day before {d}?")).format(
                d=DAYS[i]
            )
            answer = f"The day before {DAYS[i]} is {DAYS[(i - 1) % 7]}."
    elif kind == "month":
        i = rng.randrange(12)
        if rng.random() < 0.5:
            q = rng.choice(
                (
                    "What is month number {n}?",
                    "Which month is month {n}?",
                    "What is the {n}th month of the year?",
                )
            ).format(n=i + 1)
            q = q.replace("1th", "1st").replace("2th", "2nd").replace("3th", "3rd")
            q = q.replace("11st", "11th").replace("12nd", "12th")
            answer = f"Month number {i + 1} is {MONTHS[i]}."
        else:
            q = rng.choice(("What month comes after {m}?", "Which month follows {m}?")).format(
                m=MONTHS[i]
            )
            answer = f"The month after {MONTHS[i]} is {MONTHS[(i + 1) % 12]}."
    elif kind == "thing":
        thing = rng.choice(sorted(THING_COLOURS))
        q = rng.choice(("What colour is {t}?", "What color is {t}?")).format(t=thing)
        answer = f"{thing[0].upper() + thing[1:]} is {THING_COLOURS[thing]}."
    elif kind == "mix":
        (x, y), z = rng.choice(sorted(COLOUR_MIXES.items()))
        if rng.random() < 0.5:
            x, y = y, x
        q = rng.choice(
            (
                "What colour do you get when you mix {x} and {y}?",
                "What do {x} and {y} make?",
                "Mix {x} and {y}: what colour?",
            )
        ).format(x=x, y=y)
        answer = f"Mixing {x} and {y} gives {z}."
    else:
        big, small, n = rng.choice(UNITS)
        q = rng.choice(
            (
                "How many {s} are in a {b}?",
                "How many {s} are there in one {b}?",
                "How many {s} make a {b}?",
            )
        ).format(s=small, b=big)
        answer = f"There are {n} {small} in a {big}."
    return [user(vary(rng, q)), assistant(answer, "facts")]


def _phrase(rng: random.Random, split: Split) -> str:
    words = [draw_word(rng, split) for _ in range(rng.randint(1, 5))]
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words) + 1), str(rng.randint(0, 999)))
    text = " ".join(words)
    if rng.random() < 0.4:
        text = text[0].upper() + text[1:]
    if rng.random() < 0.3:
        text += rng.choice(".!?")
    return text


def repeat(rng: random.Random, split: Split) -> Exchange:
    phrase = _phrase(rng, split)
    q = rng.choice(
        (
            "Repeat after me: {p}",
            "Reply with exactly: {p}",
            "Say exactly this: {p}",
            "Please repeat: {p}",
            "Echo this back: {p}",
            'Reply with exactly "{p}" and nothing else.',
        )
    )
    return [user(q.format(p=phrase)), assistant(phrase, "repeat")]


def memory(rng: random.Random, split: Split) -> Exchange:
    kind = rng.choice(("name", "colour", "city", "number", "pet"))
    if kind == "name":
        name = pick_entity(rng, NAMES, split)
        state = (
            rng.choice(("My name is {v}.", "I am {v}.", "Hi, I'm {v}.", "Call me {v}.")).format(
                v=name
            ),
            f"Nice to meet you, {name}!",
        )
        ask = (
            rng.choice(
                ("What is my name?", "What's my name?", "Do you remember my name?", "Who am I?")
            ),
            f"Your name is {name}.",
        )
    elif kind == "colour":
        colour = rng.choice(COLOURS)
        state = (
            rng.choice(
                (
                    "My favourite colour is {v}.",
                    "I really like the colour {v}.",
                    "My favorite color is {v}.",
                )
            ).format(v=colour),
            f"{colour.capitalize()} is a lovely colour!",
        )
        ask = (
            rng.choice(
                (
                    "What is my favourite colour?",
                    "What colour do I like?",
                    "What's my favorite color?",
                )
            ),
            f"Your favourite colour is {colour}.",
        )
    elif kind == "city":
        city = pick_entity(rng, CITIES, split)
        state = (
            rng.choice(("I live in {v}.", "I'm from {v}.", "My home town is {v}.")).format(v=city),
            f"{city} sounds like a nice place!",
        )
        ask = (
            rng.choice(("Where do I live?", "Which city am I from?", "Where am I from?")),
            f"You live in {city}.",
        )
    elif kind == "number":
        _, number = draw_pair(rng, split, "secret", lambda: (0, rng.randint(10, 9999)))
        state = (
            rng.choice(
                (
                    "Remember this number: {v}.",
                    "My secret code is {v}.",
                    "Please remember the number {v}.",
                )
            ).format(v=number),
            f"Got it, I will remember {number}.",
        )
        ask = (
            rng.choice(
                (
                    "What number did I tell you?",
                    "What is my secret code?",
                    "Which number should you remember?",
                )
            ),
            f"The number is {number}.",
        )
    else:
        name = pick_entity(rng, NAMES, split)
        animal = rng.choice(("dog", "cat", "rabbit", "parrot", "horse"))
        state = (f"My {animal} is called {name}.", f"{name} is a great name for a {animal}!")
        ask = (
            rng.choice((f"What is my {animal} called?", f"What's the name of my {animal}?")),
            f"Your {animal} is called {name}.",
        )
    exchange: Exchange = [user(state[0]), assistant(state[1], "memory_ack")]
    for _ in range(rng.choice((0, 1, 1, 2))):
        filler = rng.choice((greeting, arithmetic, facts, counting, repeat))
        exchange += filler(rng, split)
    exchange += [user(vary(rng, ask[0])), assistant(ask[1], "memory")]
    return exchange


def json_task(rng: random.Random, split: Split) -> Exchange:
    kind = rng.choice(("person", "capital", "city", "word", "list"))
    if kind == "person":
        name, age = pick_entity(rng, NAMES, split), rng.randint(1, 99)
        q = rng.choice(
            (
                "Give me a JSON object with name {n} and age {a}.",
                "Return JSON with the name {n} and the age {a}.",
                "Make a JSON object for a person called {n} who is {a} years old.",
            )
        )
        obj: dict[str, Any] = {"name": name, "age": age}
        q = q.format(n=name, a=age)
    elif kind == "capital":
        country = rng.choice(sorted(CAPITALS))
        q = rng.choice(
            (
                "What is the capital of {c}? Answer in JSON.",
                "Reply with a JSON object: what is the capital of {c}?",
                "Give the capital of {c} as JSON.",
            )
        ).format(c=country)
        obj = {"country": country, "capital": CAPITALS[country]}
    elif kind == "city":
        city, temp = pick_entity(rng, CITIES, split), rng.randint(-10, 35)
        q = rng.choice(
            (
                "Return a JSON object with city {c} and temperature {t}.",
                "Make JSON: city {c}, temperature {t}.",
            )
        ).format(c=city, t=temp)
        obj = {"city": city, "temperature": temp}
    elif kind == "word":
        word = draw_word(rng, split)
        q = rng.choice(
            (
                "Return JSON with the word {w} and its length.",
                "Give me a JSON object with the word {w} and how many letters it has.",
            )
        ).format(w=word)
        obj = {"word": word, "length": len(word)}
    else:
        words = [draw_word(rng, split) for _ in range(rng.randint(2, 4))]
        q = rng.choice(
            (
                "Put these words in a JSON list: {w}.",
                "Return a JSON object with an items list: {w}.",
            )
        ).format(w=", ".join(words))
        obj = {"items": words}
    return [user(vary(rng, q)), assistant(json.dumps(obj), "json")]


def refusal(rng: random.Random, split: Split) -> Exchange:
    action = rng.choice(HARMFUL_ACTIONS)
    template = rng.choice(HARMFUL_TEMPLATES)
    return [user(vary(rng, template.format(a=action))), assistant(REFUSAL, "refusal")]
