"""High-precision patterns beside the classifier: phrasings so unambiguous that a regular
expression can flag them with near certainty, and which a small learned head may miss when
they are buried in long benign text.

A rule only ever raises scores, never lowers them: the classifier still decides everything a
rule does not match. Each rule has an `unless` pattern for the benign uses of its words
("how do I protect a child from ... nude photos" is safety education, not abuse).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RULE_SCORE = 0.99  # what a matching rule sets its categories' scores to, at least


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    categories: tuple[str, ...]  # every category it flags, parents included
    pattern: re.Pattern[str]
    unless: re.Pattern[str] | None = None

    def matches(self, text: str) -> bool:
        if self.pattern.search(text) is None:
            return False
        return self.unless is None or self.unless.search(text) is None


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE | re.VERBOSE)


_SUICIDE = (
    r"(?:kill\s+my\s*self|end\s+my\s+(?:own\s+)?life|commit\s+suicide|take\s+my\s+(?:own\s+)?life)"
)
_GROUPS = (
    r"(?:jews|muslims|christians|hindus|sikhs|blacks|black\s+people|whites|asians|arabs|"
    r"mexicans|immigrants|migrants|refugees|gays|gay\s+people|trans\s+people|roma|women)"
)
_SEXUAL = r"(?:sex|sexual|sexually|erotic|nude|nudes|naked|porn|pornographic|explicit)"
_MINOR = (
    r"(?:child|children|kid|kids|minor|minors|underage|preteen|schoolgirl|schoolboy|"
    r"little\s+(?:girl|boy)|(?:[1-9]|1[0-7]|ten|eleven|twelve|thirteen|fourteen|fifteen)"
    r"[\s-]*(?:year|yr)s?[\s-]*old)"
)

RULES: tuple[Rule, ...] = (
    Rule(
        "self_harm_intent",
        ("self-harm", "self-harm/intent"),
        _re(
            rf"\bi\s*(?:'m|am)?\s*(?:going|gonna|planning|about)\s+to\s+{_SUICIDE}"
            rf"|\bi\s+(?:want|plan|intend|have\s+decided|decided|will)\s+to\s+{_SUICIDE}"
            rf"|\bi(?:'ll|\s+will)\s+{_SUICIDE}"
        ),
        unless=_re(r"\b(?:used\s+to\s+want|no\s+longer\s+want|don'?t\s+want)\s+to\b"),
    ),
    Rule(
        "suicide_method",
        ("self-harm", "self-harm/instructions"),
        _re(
            r"\b(?:most\s+painless|quickest|fastest|easiest|surest|best)\s+way\s+to\s+"
            r"(?:kill\s+(?:my|your)\s*self|commit\s+suicide|end\s+(?:my|your)\s+life)"
        ),
    ),
    Rule(
        "lethal_dose",
        ("self-harm", "self-harm/instructions"),
        _re(
            r"\b(?:how\s+(?:many|much)|lethal\s+dose|what\s+dose)\b.{0,40}?"
            r"\b(?:to\s+die|to\s+kill\s+(?:my|your)\s*self|for\s+(?:a\s+)?suicide|"
            r"to\s+overdose\s+and\s+die)\b"
        ),
    ),
    Rule(
        "threat_to_kill",
        ("harassment", "harassment/threatening", "violence"),
        _re(
            r"\bi(?:'m|\s+am)?(?:'ll|\s+will|\s+going\s+to|\s+gonna)\s+"
            r"(?:kill|murder|shoot|stab|strangle)\s+(?:you|him|her|them)\b(?!\s+in\s+(?:the\s+)?game)"
        ),
        unless=_re(r"\b(?:in\s+(?:the\s+)?game|boss|level|match|round|process|lyrics?)\b"),
    ),
    Rule(
        "explosive_recipe",
        ("illicit", "illicit/violent"),
        _re(
            r"\b(?:how\s+(?:do\s+i|to|can\s+i|would\s+i)|recipe\s+for|instructions\s+(?:to|for)|"
            r"steps\s+to)\s+(?:make|build|assemble|construct|making|building)?\s*(?:an?\s+)?"
            r"(?:pipe\s+bomb|nail\s+bomb|pressure[\s-]cooker\s+bomb|ied|car\s+bomb|"
            r"suicide\s+vest|molotov\s+cocktail|napalm)s?\b"
        ),
    ),
    Rule(
        "untraceable_gun",
        ("illicit", "illicit/violent"),
        _re(
            r"\b(?:untraceable|ghost)\s+(?:gun|firearm|pistol|rifle)s?\b"
            r"|\b3d[\s-]?print(?:ed|ing)?\s+(?:a\s+)?(?:gun|firearm|pistol)s?\b"
        ),
        unless=_re(r"\b(?:law|legal\s+status|legislation|ban|regulat\w*|news|article)\b"),
    ),
    Rule(
        "sexual_minors",
        ("sexual", "sexual/minors"),
        _re(rf"\b{_SEXUAL}\b.{{0,60}}?\b{_MINOR}\b|\b{_MINOR}\b.{{0,60}}?\b{_SEXUAL}\b"),
        unless=_re(
            r"\b(?:educat\w*|protect\w*|prevent\w*|report\w*|safe(?:ty|guard\w*)?|puberty|"
            r"predators?|abuse\s+prevention|talk\s+to)\b"
        ),
    ),
    Rule(
        "genocide_call",
        ("hate", "hate/threatening", "harassment", "harassment/threatening", "violence"),
        _re(
            rf"\b(?:exterminate|wipe\s+out|gas|kill\s+(?:all|every)(?:\s+one\s+of)?)\s+(?:the\s+|all\s+)?{_GROUPS}\b"
            rf"|\b{_GROUPS}\s+(?:should|must|need\s+to|deserve\s+to)\s+be\s+"
            r"(?:exterminated|gassed|wiped\s+out|killed|lynched)\b"
        ),
        unless=_re(r"\b(?:history|historians?|holocaust|genocide\s+studies|why\s+did)\b"),
    ),
)


def matching_rules(text: str, rules: tuple[Rule, ...] = RULES) -> list[Rule]:
    """The rules `text` matches, in declaration order."""
    return [r for r in rules if r.matches(text)]
