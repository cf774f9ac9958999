"""How many tokens a prompt for a model elsewhere will be, before its upstream says.

A proxied request reserves its prompt's tokens at the limits before it is sent, and the
upstream's usage block settles the reservation afterwards. The upstream's vocabulary is not
known here (a Llama, a GPT, a Qwen), so the reservation is an estimate in the manner
OpenAI documents for its own tokenizers: about four characters of English text to a token.
Characters outside ASCII are weighed by their UTF-8 bytes: a CJK character (3 bytes) is a
token of its own, as it mostly is in those vocabularies, an accented letter (2 bytes) half
of one.

It costs a fraction of a microsecond for any length. The bundled model's tokenizer,
which counted these prompts before, is nothing like a large model's vocabulary (it splits
words into two-letter pieces: about twice the tokens) and cost 0.4 us a character on the
event loop: 180 us for a 430-character prompt (docs/benchmarks.md, "Fifth round").
"""

from __future__ import annotations

CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """The tokens `text` is likely to be for a large model's tokenizer; at least 1 for
    any text that is not empty."""
    if text.isascii():
        return -(-len(text) // CHARS_PER_TOKEN)
    # Each character outside ASCII is 2 to 4 bytes in UTF-8: their number, near enough,
    # from the bytes beyond one a character (a 3-byte CJK character adds 2).
    wide = min(len(text), -(-(len(text.encode("utf-8", "surrogatepass")) - len(text)) // 2))
    return -(-(len(text) - wide) // CHARS_PER_TOKEN) + wide
