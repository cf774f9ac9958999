"""Exchange generators for greetings, arithmetic, counting and string tasks.

Each returns new messages; assistant turns are tagged with a family.
"""

from __future__ import annotations

import random

from training.chat import Exchange, Split
from training.sampling import assistant, draw_pair, draw_word, drill_word, user, vary
from training.tables import DAYS, MONTHS, RAINBOW

GREETINGS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        (
            "Hi",
            "Hello",
            "Hey",
            "Hi there",
            "Hello there",
            "Good morning",
            "Good evening",
            "Hey there!",
            "Hello!",
            "Hi!",
        ),
        "Hello! How can I help you today?",
    ),
    (
        ("How are you?", "How are you doing?", "How's it going?", "How are you today?"),
        "I'm doing well, thank you! How can I help you?",
    ),
    (
        ("What is your name?", "Who are you?", "What's your name?", "What are you?"),
        "I am Headrace Tiny Chat, a very small assistant.",
    ),
    (("Thanks", "Thank you", "Thank you!", "Thanks a lot!", "Great, thanks."), "You're welcome!"),
    (("Bye", "Goodbye", "See you later", "Bye!", "Good night"), "Goodbye! Have a nice day."),
    (
        ("What can you do?", "What are you able to do?", "How can you help me?"),
        "I can do simple arithmetic, count, spell words, answer simple facts, remember "
        "what you tell me, reply in JSON and call tools.",
    ),
    (
        ("Tell me a joke.", "Do you know a joke?", "Make me laugh."),
        "Why did the robot go on holiday? It needed to recharge its batteries.",
    ),
    (
        ("What's the weather like today?", "Is it raining now?", "What time is it?"),
        "Sorry, I can't check live information without a tool.",
    ),
)


def greeting(rng: random.Random, split: Split) -> Exchange:
    prompts, answer = rng.choice(GREETINGS)
    return [user(vary(rng, rng.choice(prompts))), assistant(answer, "greeting")]


def small_talk(rng: random.Random, split: Split) -> Exchange:
    """A greeting that is not a request for live information (used when tools exist)."""
    prompts, answer = rng.choice(GREETINGS[:-1])
    return [user(vary(rng, rng.choice(prompts))), assistant(answer, "greeting")]


def _larger_first(x: int, y: int) -> tuple[int, int]:
    """Operands for a subtraction with a non-negative result."""
    return max(x, y), min(x, y)


def _add_answer(a: int, b: int) -> str:
    """Column addition: ones, then tens with the carry."""
    if a < 10 and b < 10:
        return f"{a} + {b} = {a + b}."
    ones = a % 10 + b % 10
    carry = ones // 10
    steps = f"{a % 10} + {b % 10} = {ones}" + (", carry 1. " if carry else ". ")
    tens = a // 10 + b // 10 + carry
    steps += f"{a // 10} + {b // 10}" + (" + 1" if carry else "") + f" = {tens}. "
    return steps + f"So {a} + {b} = {a + b}."


def _sub_answer(a: int, b: int) -> str:
    """Column subtraction (a >= b): ones with a borrow, then tens."""
    if a < 10:
        return f"{a} - {b} = {a - b}."
    borrow = a % 10 < b % 10
    top = a % 10 + (10 if borrow else 0)
    steps = f"{top} - {b % 10} = {top - b % 10}" + (", borrow 1. " if borrow else ". ")
    tens = a // 10 - b // 10 - int(borrow)
    steps += f"{a // 10} - {b // 10}" + (" - 1" if borrow else "") + f" = {tens}. "
    return steps + f"So {a} - {b} = {a - b}."


def _mul_answer(a: int, b: int) -> str:
    """Multiplication as the times table of ``a`` up to ``b``."""
    steps = ", ".join(f"{a} x {k} = {a * k}" for k in range(1, b + 1))
    return f"{steps}. So {a} x {b} = {a * b}."


#: Share of the train split's sums and differences drawn on single digits (differences
#: from up to 18): the digit facts every column step uses (`9 + 7 = 16`, `13 - 6 = 7`),
#: asked directly. Run 10 got the column steps right and a digit fact wrong in most of
#: its arithmetic failures. The eval split's draws are unchanged.
DIGIT_DRILL = 0.25


def arithmetic(rng: random.Random, split: Split) -> Exchange:
    op = rng.choice(("add", "add", "sub", "sub", "mul"))
    drill = op != "mul" and split == "train" and rng.random() < DIGIT_DRILL
    if op == "add":
        a, b = draw_pair(
            rng,
            split,
            "add",
            (lambda: (rng.randint(0, 9), rng.randint(0, 9)))
            if drill
            else lambda: (
                rng.randint(0, 99) if rng.random() < 0.85 else rng.randint(0, 9),
                rng.randint(0, 99) if rng.random() < 0.85 else rng.randint(0, 9),
            ),
        )
        q = rng.choice(
            (
                "What is {a} + {b}?",
                "What is {a} plus {b}?",
                "Add {a} and {b}.",
                "Calculate {a} + {b}.",
                "{a} + {b} = ?",
                "What's {a}+{b}?",
                "What is the sum of {a} and {b}?",
            )
        )
        answer = _add_answer(a, b)
    elif op == "sub":
        a, b = draw_pair(
            rng,
            split,
            "sub",
            (lambda: _larger_first(rng.randint(0, 18), rng.randint(0, 9)))
            if drill
            else lambda: _larger_first(rng.randint(0, 99), rng.randint(0, 99)),
        )
        q = rng.choice(
            (
                "What is {a} - {b}?",
                "What is {a} minus {b}?",
                "Subtract {b} from {a}.",
                "Calculate {a} - {b}.",
                "{a} - {b} = ?",
                "What's {a}-{b}?",
            )
        )
        answer = _sub_answer(a, b)
    else:
        a, b = draw_pair(rng, split, "mul", lambda: (rng.randint(2, 9), rng.randint(2, 9)))
        q = rng.choice(
            (
                "What is {a} x {b}?",
                "What is {a} times {b}?",
                "Multiply {a} by {b}.",
                "What is {a} * {b}?",
                "Calculate {a} x {b}.",
                "{a} x {b} = ?",
            )
        )
        answer = _mul_answer(a, b)
    return [user(vary(rng, q.format(a=a, b=b))), assistant(answer, "arithmetic")]


def counting(rng: random.Random, split: Split) -> Exchange:
    kind = rng.choice(("up", "up", "range", "range", "down", "days", "months", "rainbow"))
    if kind == "up":
        _, n = draw_pair(rng, split, "count", lambda: (1, rng.randint(2, 20)))
        q = rng.choice(
            (
                "Count from 1 to {n}.",
                "Count to {n}.",
                "Please count from 1 to {n}.",
                "Can you count to {n}?",
            )
        )
        items = [str(i) for i in range(1, n + 1)]
        q = q.format(n=n)
    elif kind == "range":
        a, b = draw_pair(
            rng, split, "range", lambda: ((s := rng.randint(2, 40)), s + rng.randint(2, 10))
        )
        q = rng.choice(
            (
                "Count from {a} to {b}.",
                "Please count from {a} to {b}.",
                "List the numbers from {a} to {b}.",
            )
        ).format(a=a, b=b)
        items = [str(i) for i in range(a, b + 1)]
    elif kind == "down":
        _, n = draw_pair(rng, split, "down", lambda: (0, rng.randint(2, 15)))
        q = rng.choice(("Count down from {n} to 1.", "Count backwards from {n} to 1.")).format(n=n)
        items = [str(i) for i in range(n, 0, -1)]
    elif kind == "days":
        q = rng.choice(
            (
                "List the days of the week.",
                "What are the days of the week?",
                "Name the days of the week.",
            )
        )
        items = list(DAYS)
    elif kind == "months":
        n = rng.randint(2, 12)
        if n == 12:
            q = rng.choice(("List the months of the year.", "Name all the months."))
        else:
            q = rng.choice(
                ("List the first {n} months of the year.", "Name the first {n} months.")
            ).format(n=n)
        items = list(MONTHS[:n])
    else:
        q = rng.choice(("List the colours of the rainbow.", "What are the colours of the rainbow?"))
        items = [c.capitalize() if i == 0 else c for i, c in enumerate(RAINBOW)]
    return [user(vary(rng, q)), assistant(", ".join(items) + ".", "counting")]


#: Share of the train split's string tasks on a word made of two-letter pieces of real
#: training words (`sampling.drill_word`): the letters of those pieces, which spelling
#: any word comes down to, asked directly. Run 15's string failures were almost all a
#: piece's letters (`doctor` -> `d-o-f-a-d-o`). The drill draws from a generator of its own
#: (seeded from the corpus generator's state, which it leaves as it is), so every other
#: draw of the train split, and the whole eval split, are as before.
LETTER_DRILL = 0.25


def _spelled(word: str) -> str:
    return "-".join(word)


def string_task(rng: random.Random, split: Split) -> Exchange:
    word = draw_word(rng, split)
    if split == "train":
        side = random.Random(hash(rng.getstate()[1]))  # a tuple of ints: a stable hash
        if side.random() < LETTER_DRILL:
            word = drill_word(side)
    kind = rng.choice(("reverse", "spell", "upper", "length"))
    if kind == "reverse":
        q = rng.choice(
            (
                "Reverse the word {w}.",
                "Reverse {w}.",
                "Write {w} backwards.",
                "What is {w} spelled backwards?",
                "Spell {w} in reverse.",
            )
        )
        answer = f"{word} is spelled {_spelled(word)}. Backwards: {_spelled(word[::-1])}."
    elif kind == "spell":
        q = rng.choice(
            ("Spell {w}.", "How do you spell {w}?", "Spell the word {w}.", "Can you spell {w}?")
        )
        answer = f"{word} is spelled {_spelled(word)}."
    elif kind == "upper":
        q = rng.choice(
            (
                "Write {w} in upper case.",
                "Uppercase the word {w}.",
                "Convert {w} to capital letters.",
                "Make {w} upper case.",
            )
        )
        answer = f"{word} is spelled {_spelled(word)}. In upper case: {word.upper()}."
    else:
        q = rng.choice(
            (
                "How many letters are in {w}?",
                "Count the letters in {w}.",
                "How many letters does {w} have?",
                "How long is the word {w}?",
            )
        )
        numbered = ", ".join(f"{i} {c}" for i, c in enumerate(word, 1))
        answer = f"{numbered}. So {word} has {len(word)} letters."
    return [user(vary(rng, q.format(w=word))), assistant(answer, "string")]
