"""Tool-use conversations: tool schemas, their fake results and the conversations."""

from __future__ import annotations

import json
import random
from typing import Any

from training.chat import Conversation, Exchange, Split, assemble
from training.sampling import assistant, pick_entity, user, vary
from training.tables import CITIES, NAMES
from training.tasks import arithmetic, small_talk, string_task
from training.tasks_context import facts

TOOLS: dict[str, dict[str, Any]] = {
    "get_weather": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
    "get_time": {
        "name": "get_time",
        "description": "Get the local time in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
    "convert_currency": {
        "name": "convert_currency",
        "description": "Convert an amount between currencies.",
        "parameters": {
            "type": "object",
            "properties": {
                "amount": {"type": "number"},
                "from": {"type": "string"},
                "to": {"type": "string"},
            },
            "required": ["amount", "from", "to"],
        },
    },
    "get_stock_price": {
        "name": "get_stock_price",
        "description": "Get the price of a stock.",
        "parameters": {
            "type": "object",
            "properties": {"symbol": {"type": "string"}},
            "required": ["symbol"],
        },
    },
    "send_email": {
        "name": "send_email",
        "description": "Send an email to someone.",
        "parameters": {
            "type": "object",
            "properties": {"to": {"type": "string"}, "subject": {"type": "string"}},
            "required": ["to", "subject"],
        },
    },
    "set_timer": {
        "name": "set_timer",
        "description": "Start a timer for some minutes.",
        "parameters": {
            "type": "object",
            "properties": {"minutes": {"type": "integer"}},
            "required": ["minutes"],
        },
    },
}
CURRENCIES: tuple[str, ...] = ("USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "SEK", "NOK")
STOCKS: tuple[str, ...] = (
    "ACME",
    "GLOBEX",
    "INITECH",
    "UMBRELLA",
    "HOOLI",
    "STARK",
    "WAYNE",
    "TYRELL",
    "CYBER",
    "APEX",
    "NOVA",
    "ORBIT",
)
WEATHER: tuple[str, ...] = ("sunny", "cloudy", "rainy", "windy", "snowy", "foggy")


def _tool_request(
    rng: random.Random, split: Split, name: str
) -> tuple[str, dict[str, Any], dict[str, Any], str]:
    """User question, call arguments, tool result and final answer for tool ``name``."""
    if name == "get_weather":
        city = pick_entity(rng, CITIES, split)
        temp, sky = rng.randint(-10, 35), rng.choice(WEATHER)
        q = rng.choice(
            (
                "What's the weather in {c}?",
                "What is the weather like in {c}?",
                "Is it raining in {c}?",
                "How warm is it in {c} right now?",
                "Weather in {c}?",
            )
        ).format(c=city)
        return (
            q,
            {"city": city},
            {"city": city, "temperature": temp, "condition": sky},
            f"It is {sky} and {temp} degrees in {city}.",
        )
    if name == "get_time":
        city = pick_entity(rng, CITIES, split)
        time = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
        q = rng.choice(
            ("What time is it in {c}?", "What's the local time in {c}?", "Tell me the time in {c}.")
        ).format(c=city)
        return q, {"city": city}, {"city": city, "time": time}, f"It is {time} in {city}."
    if name == "convert_currency":
        amount = rng.choice((rng.randint(1, 500), rng.randint(1, 20) * 50))
        src, dst = rng.sample(CURRENCIES, 2)
        result = round(amount * rng.uniform(0.5, 1.5), 2)
        q = rng.choice(
            ("Convert {a} {s} to {d}.", "How much is {a} {s} in {d}?", "What is {a} {s} in {d}?")
        ).format(a=amount, s=src, d=dst)
        return (
            q,
            {"amount": amount, "from": src, "to": dst},
            {"result": result},
            f"{amount} {src} is {result} {dst}.",
        )
    if name == "get_stock_price":
        symbol = rng.choice(STOCKS)
        price = round(rng.uniform(5, 500), 2)
        q = rng.choice(
            (
                "What is the price of {s} stock?",
                "How much is {s} trading at?",
                "Get me the stock price of {s}.",
            )
        ).format(s=symbol)
        return (
            q,
            {"symbol": symbol},
            {"symbol": symbol, "price": price},
            f"{symbol} is trading at {price}.",
        )
    if name == "send_email":
        person = pick_entity(rng, NAMES, split)
        address = f"{person.lower()}@example.com"
        subject = rng.choice(
            (
                "Meeting",
                "Lunch",
                "Hello",
                "Report",
                "Party",
                "Holiday",
                "Invoice",
                "Tomorrow",
                "Project update",
                "Dinner plans",
            )
        )
        q = rng.choice(
            (
                "Send an email to {e} with the subject {s}.",
                "Email {e} about {s}.",
                "Please send {e} an email titled {s}.",
            )
        ).format(e=address, s=subject)
        return (
            q,
            {"to": address, "subject": subject},
            {"status": "sent"},
            f"Done! I sent the email to {address}.",
        )
    minutes = rng.randint(1, 90)
    q = rng.choice(
        ("Set a timer for {m} minutes.", "Start a {m} minute timer.", "Remind me in {m} minutes.")
    ).format(m=minutes)
    return (
        q,
        {"minutes": minutes},
        {"status": "started", "minutes": minutes},
        f"Your timer for {minutes} minutes has started.",
    )


def tool_conversation(rng: random.Random, split: Split, system: str | None) -> Conversation:
    """Tools are listed; the user asks for one of them (or, sometimes, something else)."""
    names = rng.sample(sorted(TOOLS), rng.choice((1, 1, 2, 2, 3)))
    tools = [{"type": "function", "function": TOOLS[n]} for n in names]
    pending: Exchange = []
    if rng.random() < 0.15:
        # Tools are available but not needed: answer normally.
        pending += rng.choice((small_talk, arithmetic, facts, string_task))(rng, split)
    else:
        name = rng.choice(names)
        question, args, result, answer = _tool_request(rng, split, name)
        call_id = f"call_{rng.randrange(16**8):08x}"
        call = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
            ],
        }
        pending += [
            user(vary(rng, question)),
            (call, "tool_call"),
            ({"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)}, None),
            assistant(answer, "tool_answer"),
        ]
    if rng.random() < 0.2:
        pending += rng.choice((small_talk, facts))(rng, split)
    return assemble(pending, system, tools)
