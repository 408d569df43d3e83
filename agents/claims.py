"""Does a stated cause rest on the evidence it cites? Does it agree with the leads?

A small model's typical failures, measured with real ones: it names the symptom as the cause
("a high error rate in checkout requests"), it cites lines that do not speak of what it names
("DNS issue" citing a cache-miss line), or it names something no finding points to. Reading
the claim properly is beyond us; comparing its words is not:

- `terms(text)`: the content words of a text, lower-cased and crudely stemmed (so "exhausted"
  and "exhaustion" meet), without stop words, plus the concept each belongs to ("parse" and
  "syntax", "OOM" and "heap" name one thing);
- `symptom_terms(alert)`: the words the alert itself uses (its name, split at capitals, its
  labels and its summary) and the generic words of incident talk ("error", "rate", "high"):
  a cause made only of those restates the symptom;
- `speaks_of(claim, texts, symptoms)`: the claim and one of the texts share a content word
  that is not a symptom word, or fall in the same failure category (agents/leads.py: "out of
  memory" and "OOMKilled" are one thing).

Linear in the text: one regex pass over words, each pattern possessive or anchored at the start
of a run (tests/tools/test_pathological.py holds it to that on megabyte inputs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Set as AbstractSet

from firebreak.agents.leads import CATEGORIES
from firebreak.store.schemas import Lead
from firebreak.tools.models import AlertContext

__all__ = ["cause_terms", "names_a_cause", "parrots", "speaks_of", "symptom_terms", "terms"]

# `_` splits names. A number is tried only where its run of digits starts (the look-behind),
# and possessively: from every digit of a long run it cost the rest of the run (quadratic).
_WORD = re.compile(r"[a-z][a-z0-9]*+(?:[.-][a-z0-9]++)*+|(?<!\d)\d++(?:\.\d++){2,}+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SUFFIXES = ("ations", "ation", "ions", "ion", "ings", "ing", "ed", "es", "s")
_STOP = frozenset(
    """
    a an the and or but of to in on at by for with from into onto over under after before
    during since until than then that this these those there their its it is are was were be
    been being has have had do does did not no nor so as if when while which who what why how
    all any some each most more less very also only just about above below between because
    due caused cause causes causing likely probably possibly possible root led lead leading
    may might can could would should will shall must seems appears indicating indicates
    suggest suggests result resulted resulting issue issues problem problems use used using
    new first last time times now then still again get got make made
    """.split()
)
# Words of incident talk that name no cause on their own.
_GENERIC = frozenset(
    """
    error errors erroring rate rates high higher increase increased increasing spike spiking
    fail failed failing failure failures alert alerts alerting service services request
    requests response responses incident incidents elevated degraded degradation unavailable
    availability outage problem ratio percent level levels users user traffic many several
    number count http status code codes 5xx 4xx server client production prod app application
    system systems occurred occur occurs happening happened observed seen
    sum avg min max total bucket seconds histogram quantile irate increase without le
    start started starting began begun utc gmt minute minutes hour hours day days ago today
    """.split()
)


# Words that name one thing: a claim and a line that use two of them speak of the same.
_CONCEPTS = (
    "pars parse syntax malform unexpect invalid",
    "memory oom oomkill heap",
    "pool connect",
    "disk space volume enospc",
    "certificat cert tls x509 ssl handshake",
    "dns resolv resolution lookup nxdomain",
    "deploy rollout release upgrad version",
    "config configuration setting flag",
    "timeout timed latency slow",
    "credential password token auth authentication unauthoriz forbidden",
    "crash crashloopbackoff restart backoff exit",
)
_CONCEPT_OF = {word: f"~{n}" for n, group in enumerate(_CONCEPTS) for word in group.split()}


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) - len(suffix) >= 4 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def terms(text: str) -> set[str]:
    """The content words of `text`, stemmed; versions (`v2.4.1`, `1.4.2`) kept whole."""
    words = _WORD.findall(_CAMEL.sub(" ", text).lower())
    stems = {_stem(w) for w in words if len(w) >= 3 and w not in _STOP}
    return stems | {_CONCEPT_OF[s] for s in stems if s in _CONCEPT_OF}


def symptom_terms(alert: AlertContext) -> set[str]:
    """The alert's own words, and the generic words of incident talk."""
    own = [alert.labels.get("alertname", ""), *alert.labels.values()]
    own += [alert.annotations.get("summary", ""), alert.annotations.get("description", "")]
    return terms(" ".join(own)) | {_stem(word) for word in _GENERIC}


def _categories(text: str) -> set[str]:
    return {category.name for category in CATEGORIES if category.pattern.search(text)}


def cause_terms(claim: str, symptoms: AbstractSet[str]) -> set[str]:
    """What the claim names beyond the symptom (empty: it restates the symptom)."""
    return terms(claim) - symptoms


def names_a_cause(text: str, symptoms: AbstractSet[str]) -> bool:
    """Whether `text` holds anything beyond the symptom: a lead made only of the alert's own
    words (the 5xx rate that fired the alert) cannot agree or disagree with a cause."""
    return bool(cause_terms(text, symptoms)) or bool(_categories(text))


def speaks_of(claim: str, texts: Iterable[str], symptoms: AbstractSet[str]) -> bool:
    """Whether one of `texts` speaks of what `claim` names (see the module doc)."""
    named = cause_terms(claim, symptoms)
    kinds = _categories(claim)
    for text in texts:
        if named & terms(text) or kinds & _categories(text):
            return True
    return False


PARROTED_SHARE = 0.8  # of a claim's words found in one lead: the claim repeats it
TEMPLATE_WORDS = 3  # ... when at least this many of them are the lead's own wording
_QUOTED = re.compile(r'"[^"]*"|\'[^\']*\'')


def parrots(claim: str, leads: Iterable[Lead]) -> bool:
    """Whether the claim is one of the leads' sentences repeated (a small model's way of
    answering): most of its words are in that lead, several of them the lead's own wording
    rather than the evidence it quotes ("The first error of the incident, like …"). Word
    for word: not stemmed, no concepts."""
    said = _plain_words(claim)
    if len(said) < 4:
        return False
    for lead in leads:
        template = _plain_words(_QUOTED.sub(" ", lead.text)) - _STOP
        if len(said & template) >= TEMPLATE_WORDS and len(
            said & _plain_words(lead.text)
        ) >= PARROTED_SHARE * len(said):
            return True
    return False


def _plain_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) >= 3}
