"""Keep secrets out of everything preflight writes.

Two layers, applied to every string bound for any output (terminal, JSON, Markdown,
JUnit, evidence, summary, fix, crash text):

- by shape: URL userinfo (`https://u:PASS@host`), `Authorization:` / `Bearer` values,
  secret-named flags and `KEY=value` pairs anywhere in a string (also inside a
  `bash -c "..."` string or a JSON argument: `{"api_key": "..."}`), and token shapes
  (`hf_...`, `sk-...`, `ghp_...`, a W&B key: 40 hex digits);
- by value: every known secret (secret-named environment values, `.env` values, what
  the launch script exports), matched by one trie-shaped regular expression so the cost
  is linear in the text, not in text x secrets (50,000 keys stay cheap).

Values are masked, never keys or structure: a dict key is rewritten only by a secret
that cannot be a plain word, so a `.env` value `error` does not rename the key `error`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

SECRET_NAME = re.compile(
    r"(TOKEN|SECRET|PASSW|PASSPHRASE|PWD$|API[_-]?KEY|ACCESS[_-]?KEY|PRIVATE[_-]?KEY|[_-]KEY$|"
    r"^KEY$|CREDENTIAL|AUTH(?!ORS?(?![A-Z]))|COOKIE|SESSION[_-]?ID)", re.I)
MASK = "***"
MIN_SECRET_LEN = 4
# PWD is the shell's working directory, not a password.
NOT_SECRET = frozenset({"PWD", "OLDPWD", "XAUTHORITY"})
# Launch settings whose values preflight itself reports (ports, modes, device lists): a
# `.env` holding MASTER_PORT=29611 must not turn "ports free: 29611" into "***".
PUBLIC_SETTINGS = frozenset({
    "MASTER_PORT", "MASTER_ADDR", "NNODES", "NODE_RANK", "NPROC_PER_NODE", "WORLD_SIZE",
    "CUDA_VISIBLE_DEVICES", "WANDB_MODE", "HF_HUB_OFFLINE", "NCCL_DEBUG",
    "NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "USE_LIBUV", "OMP_NUM_THREADS"})


def is_secret_name(name: str) -> bool:
    bare = name.strip().lstrip("-").strip("'\"")
    return bare.upper() not in NOT_SECRET and bool(SECRET_NAME.search(bare))


def redact_argv(argv: Iterable[str]) -> list[str]:
    """An argv with secret-named options' values masked; every word is also redacted by
    shape (a URL password, a `bash -c` string holding `--hf_token X`)."""
    argv = list(argv)
    values = secret_values(argv)
    out: list[str] = []
    hide_next = False
    for arg in argv:
        for value in values:  # the same secret elsewhere on the line (a path, a URL)
            if value in arg:
                arg = arg.replace(value, MASK)
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        name, eq, _ = arg.partition("=")
        if eq and not any(c.isspace() for c in name) and is_secret_name(name):
            out.append(f"{name}={MASK}")
        elif arg.startswith("-") and not any(c.isspace() for c in arg) and is_secret_name(arg):
            out.append(arg)
            hide_next = True
        else:
            out.append(redact_text(arg))
    return out


def secret_values(argv: Iterable[str]) -> list[str]:
    """The values a command line gives to secret-named options (`--api-key X`,
    `--token=X`, `HF_TOKEN=X`): the same value elsewhere (a path) is then scrubbed too."""
    found: list[str] = []
    take_next = False
    for arg in argv:
        if take_next:
            found.append(arg)
            take_next = False
            continue
        name, eq, value = arg.partition("=")
        if eq and not any(c.isspace() for c in name) and is_secret_name(name):
            found.append(value)
        elif arg.startswith("-") and not any(c.isspace() for c in arg) and is_secret_name(arg):
            take_next = True
    return [v for v in found if len(v) >= MIN_SECRET_LEN and not v.startswith("-")]


# -- shapes ----------------------------------------------------------------------------

# auth\w* but not author(s) (ms-swift's --model_author, author_email); AUTHORIZATION still is
_NAME_WORDS = (r"(?:token|secret|passw\w*|passphrase|pwd|api[_-]?key|key|credentials?"
               r"|auth(?!ors?(?![a-z]))\w*"
               r"|cookie)")
_NAMED = r"[\w.-]{0,64}" + _NAME_WORDS + r"[\w.-]{0,64}"
_VALUE = r"""(?:"(?:[^"\\\n]|\\.){1,4000}"|'[^'\n]{1,4000}'|[^\s'"&,;})\]]{1,4000})"""
_SHAPES = re.compile(
    r"|".join([
        # scheme://user:password@host (and a bare scheme://token@host)
        r"(?P<url>\b[A-Za-z][A-Za-z0-9+.-]{0,30}://)(?P<userinfo>[^\s/@'\"<>]{1,2000})@",
        # the same without its scheme (half a URL in an error message): user:password@host
        r"(?P<ui>(?<![\w.%-])[\w.%-]{1,64}:)(?P<uipw>[^\s/@'\"<>:]{1,2000})@(?=[\w\[])",
        # Authorization: Bearer X / Basic X / X; a lone `Bearer X`
        r"(?P<authh>\b(?:proxy-)?authorization\b[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token|digest)\s+)?)"
        r"(?P<authv>[^\s'\"\\]{1,4000})",
        r"(?P<bearer>\bbearer\s+)(?P<bearerv>[A-Za-z0-9._~+/=-]{4,4000})",
        # JSON / dict: "api_key": "value" (also escaped inside a JSON string)
        r"(?P<jkey>(?P<q>\\?[\"'])[\w.-]{0,64}" + _NAME_WORDS + r"[\w.-]{0,64}(?P=q)\s*:\s*)"
        r"(?P<jval>\\?\"(?:[^\"\\]|\\[^\"]){0,4000}\\?\"|'[^']{0,4000}'|[^\s,}\]]{1,4000})",
        # --secret-flag value / --secret-flag=value / KEY=value / key: value
        r"(?P<flag>(?<![\w.-])-{1,2}" + _NAMED + r")(?P<fsep>=|\s+)(?P<fval>"
        + _VALUE + r")",
        r"(?P<kv>(?<![\w.-])[A-Za-z_]" + _NAMED + r")(?P<kvsep>=)(?P<kvval>"
        + _VALUE + r")",
        # token shapes: HuggingFace, OpenAI, GitHub, Slack, AWS access key, W&B key
        r"(?P<tok>\b(?:hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|"
        r"github_pat_[A-Za-z0-9_]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|"
        r"[0-9a-f]{40})\b)",
    ]),
    re.I,
)


def _quoted_mask(value: str) -> str:
    for quote in ('\\"', '"', "'"):
        if len(value) >= 2 * len(quote) and value.startswith(quote) and value.endswith(quote):
            return f"{quote}{MASK}{quote}"
    return MASK


_REFERENCE = re.compile(r"""\\?["']?(?:\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|\*\*\*|<[^>]*>)\\?["']?""")


def _reference(value: str) -> bool:
    """`"$WANDB_KEY"`, `${HF_TOKEN}`, `***`, `<token>`: a name or placeholder, no secret."""
    return bool(_REFERENCE.fullmatch(value))


def _shape(m: re.Match[str]) -> str:
    g: dict[str, str] = m.groupdict()
    if g["url"] is not None:
        user, colon, _ = g["userinfo"].partition(":")
        return f"{g['url']}{user}:{MASK}@" if colon else f"{g['url']}{MASK}@"
    if g["ui"] is not None:
        return g["ui"] + MASK + "@"
    if g["authh"] is not None:
        return g["authh"] + MASK
    if g["bearer"] is not None:
        return g["bearer"] + MASK
    if g["jkey"] is not None:
        return m.group(0) if _reference(g["jval"]) else g["jkey"] + _quoted_mask(g["jval"])
    if g["flag"] is not None:
        if g["fval"].startswith("-") or not is_secret_name(g["flag"]) or _reference(g["fval"]):
            return m.group(0)  # the next option, not a value; or a word like --monkey
        return g["flag"] + g["fsep"] + _quoted_mask(g["fval"])
    if g["kv"] is not None:
        if not is_secret_name(g["kv"]) or _reference(g["kvval"]):
            return m.group(0)
        return g["kv"] + "=" + _quoted_mask(g["kvval"])
    return MASK


def redact_text(text: str) -> str:
    """Secrets masked by shape (no known values needed)."""
    if len(text) < MIN_SECRET_LEN:
        return text
    return _SHAPES.sub(_shape, text)


def encodable(text: str) -> str:
    """Undecodable bytes of a path or environment value (surrogate escapes) as `\\xff`
    text, so writing the report or the terminal never fails on them."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


# C0 controls, DEL and C1 controls: ESC starts a terminal escape sequence, \r overwrites
# the line, \x9b is the one-byte CSI. Text another machine wrote (a replayed NVML snapshot,
# a node's report) shows them as `?` on the terminal; the JSON keeps them as they were.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """One terminal line of text someone else wrote: control characters as `?`, undecodable
    bytes as `\\xff` (encodable), so it can neither drive the terminal nor fail to print."""
    try:
        text = encodable(text)
    except UnicodeEncodeError:  # a surrogate no byte was escaped to ("\\ud800" in JSON)
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return CONTROL.sub("?", text)


# GFM splits a table row at every `|` not escaped by a backslash, inside a code span too
# (cmark-gfm extensions/table.c: a cell is `(\\.|[^|])+`): a run of backslashes before one
# is doubled, then the pipe escaped.
_PIPE = re.compile(r"(\\*)\|")


def md_cell(text: object) -> str:
    """One Markdown table cell of text someone else wrote (a hostname, a version, a
    reason): printable, one line, and its `|` escaped so it cannot add a column."""
    return _PIPE.sub(lambda m: m.group(1) * 2 + "\\|", printable(str(text)))


# -- known values ------------------------------------------------------------------------


def _joined(char: str) -> bool:
    """A character that makes a plain word part of a longer name (`wandb-offline`,
    `nccl_limits`): a whole-word match stops at anything else."""
    return char.isalnum() or char in "-_"


class _Values:
    """Finds any of many literal values in a text in time linear in the text: an
    Aho-Corasick automaton (pyahocorasick) when installed, else one regular expression
    of all values (fine for the usual few dozen)."""

    def __init__(self, words: set[str], fenced: bool):
        self.fenced = fenced  # a match must not touch a letter or digit on either side
        self.automaton: Any = None  # pyahocorasick ships no type information
        self.regex: re.Pattern[str] | None = None
        try:
            import ahocorasick
        except ImportError:
            body = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
            self.regex = re.compile(rf"(?<![A-Za-z0-9_-])(?:{body})(?![A-Za-z0-9_-])"
                                    if fenced else body)
            return
        self.automaton = ahocorasick.Automaton()
        for word in words:
            self.automaton.add_word(word, len(word))
        self.automaton.make_automaton()

    def sub(self, text: str) -> str:
        if self.regex is not None:
            return self.regex.sub(MASK, text)
        parts: list[str] = []
        last = 0
        for end, length in self.automaton.iter_long(text):
            start = end - length + 1
            if start < last:
                continue
            if self.fenced and ((start > 0 and _joined(text[start - 1]))
                                or (end + 1 < len(text) and _joined(text[end + 1]))):
                continue
            parts.append(text[last:start])
            parts.append(MASK)
            last = end + 1
        if not parts:
            return text
        parts.append(text[last:])
        return "".join(parts)


_URL_PASSWORD = re.compile(r"://[^\s/@:]*:([^\s/@]+)@")
# pyahocorasick's trie is one node per character (a 1 MiB value is a 1 MiB-deep chain,
# which crashed the interpreter at exit); values longer than this are few: str.replace.
_LONG = 256
_WORDLIKE = re.compile(r"[A-Za-z]+|[0-9.]+")


class Scrubber:
    """Masks known secret values (and secret shapes) inside the strings of a JSON-like
    object. Secrets are `strict` (matched anywhere, dict keys too) or, for a plain word
    or number from a key that is not secret-named, `word` (matched as a whole word in
    values only)."""

    def __init__(self, secrets: Iterable[str] = ()):
        self.secrets: set[str] = set()
        self.words: set[str] = set()
        self.long: set[str] = set()  # over _LONG characters: replaced one by one
        self._strict: _Values | None = None
        self._word: _Values | None = None
        self._dirty = False
        self.add(secrets)

    def add(self, secrets: Iterable[str], named_secret: bool = True) -> None:
        """Add values; `named_secret` False: values of keys that do not look secret (a
        `.env`'s other keys), where a plain word is matched only as a whole word."""
        for value in secrets:
            if not value or len(value) < MIN_SECRET_LEN:
                continue
            password = _URL_PASSWORD.search(value)
            if password and len(password.group(1)) >= MIN_SECRET_LEN:
                self.secrets.add(password.group(1))  # pieces of the URL may be printed alone
            if len(value) > _LONG:
                self.long.add(value)
            elif not named_secret and _WORDLIKE.fullmatch(value):
                self.words.add(value)
            else:
                self.secrets.add(value)
            self._dirty = True

    def add_mapping(self, values: Mapping[str, str]) -> None:
        self.add((v for k, v in values.items() if is_secret_name(k)), named_secret=True)
        self.add((v for k, v in values.items()
                  if not is_secret_name(k) and k not in PUBLIC_SETTINGS), named_secret=False)

    def add_environ(self, environ: Mapping[str, str]) -> None:
        self.add(v for k, v in environ.items() if is_secret_name(k))

    def _compile(self) -> None:
        if not self._dirty:
            return
        self._strict = _Values(self.secrets, fenced=False) if self.secrets else None
        self._word = _Values(self.words, fenced=True) if self.words else None
        self._dirty = False

    def _long(self, value: str) -> str:
        for secret in self.long:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def key(self, value: str) -> str:
        self._compile()
        value = self._long(value)
        return encodable(self._strict.sub(value) if self._strict is not None else value)

    def text(self, value: str) -> str:
        self._compile()
        value = self._long(value)
        if self._strict is not None:
            value = self._strict.sub(value)
        if self._word is not None:
            value = self._word.sub(value)
        return encodable(redact_text(value))

    def __call__(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.key(str(k)): self(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self(v) for v in obj]
        return obj
