"""The shapes of secrets the redactor knows, each found in time linear in the text.

Why so careful: `re` backtracks, and a pattern that starts with a repeated class (`[\\w.-]*?key`)
is tried again from every position of a long run of such characters: 32,000 characters of
`a.` took minutes, holding the GIL. So every pattern here either starts at a literal
(`-----BEGIN`, `bearer`, `xoxb-`), or starts only where a run of its characters starts (a
negative look-behind on the same class), and its repetitions are possessive or bounded. What a
regular expression cannot decide cheaply (is this key name a secret's? is this a port or a
password?) is decided in Python on the match.

Replacements keep the structure around a secret (`scheme://user:[REDACTED]@host`,
`password="[REDACTED]"`) so a reader still sees what failed.
"""

from __future__ import annotations

import base64
import itertools
import re
from collections.abc import Callable
from urllib.parse import quote, quote_plus

__all__ = [
    "REDACTED",
    "SHAPES",
    "STEMS",
    "dangling_key",
    "encodings",
    "scrub_pairs",
    "scrub_private_keys",
    "sensitive_key",
]

REDACTED = "[REDACTED]"
MIN_ENCODED_SECRET = 8  # shorter secrets are scrubbed verbatim only: their encodings are noise
_MAX_VALUE = 4096

Shape = tuple[re.Pattern[str], str | Callable[[re.Match[str]], str], tuple[str, ...]]

# -- key names ----------------------------------------------------------------------------------

# A key is a secret's when its last words end in one of these (`DB_PASS`, `dbpass`,
# `x-auth-token`) or one of its words (or two adjacent ones joined) is one of `_WORDS`
# (`SECRET_KEY_BASE`, `X-Amz-Signature`, `sig`). `prompt_tokens` is neither.
_ENDINGS = (
    "password", "passwd", "passphrase", "pass", "pwd", "secret", "token", "apikey", "accesskey",
    "accesskeyid", "secretkey", "privatekey", "credential", "credentials", "sessionid", "cookie",
    "signature",
)  # fmt: skip
_WORDS = frozenset(
    "password passwd passphrase pwd secret token sig signature credential credentials apikey "
    "privatekey secretkey accesskey cookie".split()
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
# Cheap first look: a key that can be a secret's holds one of these stems.
STEMS = ("pass", "pwd", "secret", "token", "key", "sig", "credential", "cookie", "session")
_STEMS = "|".join(STEMS)


def sensitive_key(name: str) -> bool:
    """Whether a key (a label, a JSON field, `KEY=`, `--key`) names a secret."""
    words = [w for w in _NOT_ALNUM.split(_CAMEL.sub("_", name[:200]).lower()) if w]
    if not words:
        return False
    if "".join(words).endswith(_ENDINGS):
        return True
    pairs = {a + b for a, b in itertools.pairwise(words)}
    return any(w in _WORDS for w in words) or bool(pairs & _WORDS)


# -- key = value, key: value, --key value, key%3Dvalue ----------------------------------------

_PAIR_KEY = re.compile(
    rf"(?i)(?<![\w.-])(?P<key>[\w.-]{{0,40}}?(?:{_STEMS})[\w.-]{{0,40}}+)"
    r"(?P<sep>[\"']?[ \t]*(?:[:=]|%3[ad])\s*|[ \t]+)"
)
_VALUE = re.compile(
    rf"\"[^\"\n]{{0,{_MAX_VALUE}}}+\"?|'[^'\n]{{0,{_MAX_VALUE}}}+'?"
    rf"|[^\s\"'&,;}}\])<]{{1,{_MAX_VALUE}}}+"
)
_KEYISH = re.compile(r"[\w.-]{1,80}+[\"']?[ \t]*[:=]")


def scrub_pairs(text: str) -> str:
    """`password=x`, `"token": "x"`, `DB_PASS: x`, `--password x`, `password%3Dx`: the value
    of every key that names a secret becomes `[REDACTED]` (quotes kept). One pass."""
    if not text:
        return text
    out: list[str] = []
    last = 0
    for match in _PAIR_KEY.finditer(text):
        if match.start() < last or not _pair_applies(match):
            continue
        value = _VALUE.match(text, match.end())
        if value is None or _already(text, value.start()):
            continue
        if "\n" in match.group("sep") and _KEYISH.match(text, value.start()):
            continue  # `password:` with nothing after it, then the next key: no value here
        out += [text[last : value.start()], _quoted(value.group())]
        last = value.end()
    return "".join(out) + text[last:] if out else text


def _pair_applies(match: re.Match[str]) -> bool:
    key, sep = match.group("key"), match.group("sep")
    if not sep.strip() and not key.startswith("-"):
        return False  # `password was rotated`: prose; only a `--flag value` takes a space
    return sensitive_key(key)


def _already(text: str, at: int) -> bool:
    if text[at : at + 1] in {'"', "'"}:
        at += 1
    return text.startswith(REDACTED, at)


def _quoted(value: str) -> str:
    quote_char = value[0] if value[:1] in {'"', "'"} else ""
    closing = quote_char if quote_char and len(value) > 1 and value.endswith(quote_char) else ""
    return f"{quote_char}{REDACTED}{closing}"


_DANGLING = re.compile(r"(?<![\w.-])(?P<key>[\w.-]{1,80}+)[\"']?[ \t]*[:=][ \t]*$")


def dangling_key(text: str) -> bool:
    """Whether `text` ends in a secret's key with no value (`password:`): in a config dump
    logged line by line, the value is the next line."""
    match = _DANGLING.search(text[-200:])
    return match is not None and sensitive_key(match.group("key"))


# -- <password>x</password> ---------------------------------------------------------------------

_XML = re.compile(
    rf"<(?P<tag>[\w.:-]{{1,80}}+)(?:\s[^<>]{{0,400}}+)?>(?P<val>[^<]{{1,{_MAX_VALUE}}}+)</"
)


def _xml(match: re.Match[str]) -> str:
    if not sensitive_key(match.group("tag")) or match.group("val") == REDACTED:
        return match.group()
    start, end = match.span("val")
    whole = match.group()
    base = match.start()
    return whole[: start - base] + REDACTED + whole[end - base :]


# -- scheme://user:password@host ----------------------------------------------------------------

_URL_PASSWORD = re.compile(
    r"(?<![A-Za-z0-9+.-])(?P<pre>[A-Za-z][A-Za-z0-9+.-]{0,30}+://[^\s:/?#@]{0,256}+:)"
    r"(?P<pw>[^\s@:]{1,256}+)@"
)
_PORT_PATH = re.compile(r"\d{1,5}(?:/|$)")


def _url_password(match: re.Match[str]) -> str:
    password = match.group("pw")
    if password == REDACTED or _PORT_PATH.match(password):
        return match.group()  # `https://host:8443/a@b`: a port and a path, not a password
    return f"{match.group('pre')}{REDACTED}@"


# -- PEM private keys ---------------------------------------------------------------------------

_PEM_BEGIN = re.compile(r"-----BEGIN (?P<kind>[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?)-----")


def scrub_private_keys(text: str) -> str:
    """A PEM private key block, whole; one cut off by a line limit, to the end of the text."""
    if "-----BEGIN" not in text:
        return text
    out: list[str] = []
    last = 0
    for match in _PEM_BEGIN.finditer(text):
        if match.start() < last:
            continue
        footer = f"-----END {match.group('kind')}-----"
        end = text.find(footer, match.end())
        out += [text[last : match.start()], REDACTED]
        last = len(text) if end < 0 else end + len(footer)
        if end < 0:
            break
    return "".join(out) + text[last:] if out else text


# -- the rest: vendor tokens, JWTs, headers, AWS keys, e-mail -----------------------------------

# Lookahead bodies: what follows "Bearer " is a credential, not an English word.
_CREDENTIAL_LIKE = (
    r"[A-Za-z-]{0,200}+[0-9]"  # a digit somewhere in it
    r"|[A-Za-z-]{0,200}+[._~+/][A-Za-z0-9]"  # a symbol inside it (a trailing full stop is prose)
    r"|[A-Za-z-]*?[a-z][A-Z]"  # mixed case after the first letter
    r"|[A-Za-z]{20}"  # long
)


def _aws_secret(match: re.Match[str]) -> str:
    """40 base64 characters are an AWS secret key only if they look random (mixed classes)."""
    value = match.group()
    if any(c.isupper() for c in value) and any(c.islower() for c in value):
        if any(c.isdigit() for c in value) or "/" in value or "+" in value:
            return REDACTED
    return value


_EMAIL_DOMAIN_END = re.compile(r"\.[A-Za-z]{2,}$")


def _email(match: re.Match[str]) -> str:
    return REDACTED if _EMAIL_DOMAIN_END.search(match.group("domain")) else match.group()


# (pattern, replacement, needles): a pattern runs only on text holding one of its needles
# (looked for in the lower-cased text), so ordinary lines pay for a few substring searches.
SHAPES: tuple[Shape, ...] = (
    (_URL_PASSWORD, _url_password, ("://",)),
    # JSON Web Tokens (header.payload.signature, both JSON parts start with `{"` -> eyJ).
    (
        re.compile(
            r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}+\.eyJ[A-Za-z0-9_-]{5,}+\.[A-Za-z0-9_-]*+"
        ),
        REDACTED,
        ("eyj",),
    ),
    # Authorization headers, whatever the scheme (Bearer, Basic, token...).
    (
        re.compile(
            r"(?i)\b(?P<head>(?:proxy-)?authorization[ \t]*[:=][ \t]*[\"']?"
            r"(?:(?:bearer|basic|token|digest|apikey|negotiate)[ \t]++)?+)(?!\[REDACTED\])"
            r"[^\s\"',;]++"
        ),
        rf"\g<head>{REDACTED}",
        ("authorization",),
    ),
    # A bare "Bearer <token>" elsewhere (curl lines, dumped headers). The value must look
    # like a credential, not a word: a digit or a symbol inside, mixed case, or 20+ letters.
    # Otherwise Firebreak's own "missing or wrong bearer token" lost its last word.
    (
        re.compile(
            r"(?i)\b(?P<head>bearer[ \t]++)(?!\[REDACTED\])(?-i:(?=" + _CREDENTIAL_LIKE + r"))"
            r"[A-Za-z0-9\-._~+/]++=*+"
        ),
        rf"\g<head>{REDACTED}",
        ("bearer",),
    ),
    # Vendor tokens with recognisable shapes.
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{8,}+"), REDACTED, ("xox",)),  # Slack tokens
    (re.compile(r"\bxapp-\d-[A-Za-z0-9-]{8,}+"), REDACTED, ("xapp-",)),  # Slack app-level
    (
        re.compile(r"(?P<pre>https://hooks\.slack\.com/services/)[A-Za-z0-9/_-]++"),
        rf"\g<pre>{REDACTED}",
        ("hooks.slack.com",),
    ),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{20,}+"), REDACTED, ("sk-",)),  # OpenAI-style keys
    (re.compile(r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}+"), REDACTED, ("k_live_", "k_test_")),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}+"), REDACTED, ("gh",)),  # GitHub
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{40,}+"), REDACTED, ("github_pat_",)),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}+"), REDACTED, ("glpat-",)),  # GitLab
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), REDACTED, ("aiza",)),  # Google API keys
    (
        re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"),
        REDACTED,
        ("akia", "asia", "agpa", "aida", "aroa", "anpa", "anva", "aipa"),
    ),  # AWS access key ids
    (_XML, _xml, ("</",)),
    # AWS secret access keys without a telling key name: 40 random-looking base64 characters.
    (
        re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"),
        _aws_secret,
        (),
    ),
    # E-mail addresses (personal data; they also identify the on-call people).
    (
        re.compile(
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}+@"
            r"(?P<domain>[A-Za-z0-9-]{1,63}+(?:\.[A-Za-z0-9-]{1,63}+){1,10}+)"
        ),
        _email,
        ("@",),
    ),
)


# -- our own secrets, however they were encoded -------------------------------------------------


def encodings(secret: str) -> set[str]:
    """`secret` as it may appear: verbatim, URL-encoded, and in base64 (standard and URL-safe,
    padded or not, and as the part of a larger blob it encodes to at each of the three byte
    alignments, e.g. `Basic base64(user:secret)`)."""
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}
    raw = secret.encode()
    if len(raw) < MIN_ENCODED_SECRET:
        return {secret}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(raw).decode()
        forms |= {whole, whole.rstrip("=")}
        for shift in range(3):
            shifted = encode(b"\0" * shift + raw).decode()
            start = -(-4 * shift // 3)  # the first character made of the secret's bits only
            end = 8 * (shift + len(raw)) // 6  # the last one not mixed with what follows
            forms.add(shifted[start:end])
    return forms
