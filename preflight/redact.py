"""Keep secrets out of everything preflight writes.

Two layers: command lines are redacted by shape (`--token X`, `HF_TOKEN=...`), and
every string bound for a report is scrubbed of the known secret values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSW|API[_-]?KEY|[_-]KEY$|^KEY$|CREDENTIAL|AUTH)", re.I)
MASK = "***"
MIN_SECRET_LEN = 4


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def redact_argv(argv: Iterable[str]) -> list[str]:
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        name, eq, _ = arg.partition("=")
        if eq and is_secret_name(name.lstrip("-")):
            out.append(f"{name}={MASK}")
        elif arg.startswith("-") and is_secret_name(arg.lstrip("-")):
            out.append(arg)
            hide_next = True
        else:
            out.append(arg)
    return out


class Scrubber:
    """Replaces any known secret value inside the strings of a JSON-like object."""

    def __init__(self, secrets: Iterable[str] = ()):
        self.secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        self.secrets.update(s for s in secrets if s and len(s) >= MIN_SECRET_LEN)

    def add_environ(self, environ: Mapping[str, str]) -> None:
        self.add(v for k, v in environ.items() if is_secret_name(k))

    def text(self, value: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def __call__(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.text(str(k)): self(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self(v) for v in obj]
        return obj


# Secrets by shape inside free text (a log line, a message): URL passwords, secret-named
# `NAME=value` / `--flag value` / `"key": "value"`, bearer headers, well-known token prefixes.
_TEXT_SHAPES = [
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:)[^@\s'\"/]+(@)", re.I),
     rf"\g<1>{MASK}\g<2>"),
    (re.compile(r"((?:^|[\s'\"{,(])-{0,2}[\w.-]*"
                r"(?:TOKEN(?!S)|SECRET|PASSW\w*|API[_-]?KEY|[_-]KEY|CREDENTIAL)"
                r"[\w-]*['\"]?\s*[=:]\s*['\"]?)[^\s'\",})]+", re.I), rf"\g<1>{MASK}"),
    (re.compile(r"((?:^|\s)--?[\w-]*(?:token(?!s)|secret|passw\w*|api[_-]?key|[_-]key)\s+)(?!-)\S+",
                re.I), rf"\g<1>{MASK}"),
    (re.compile(r"(\b(?:Bearer|Basic|token)\s+)[A-Za-z0-9._~+/=-]{8,}", re.I), rf"\g<1>{MASK}"),
    (re.compile(r"\b(?:hf_[A-Za-z0-9]{16,}|sk-[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abp]-[A-Za-z0-9-]{10,})"),
     MASK),
]


def redact_text(text: str) -> str:
    """Free text with secrets masked by their shape (values of unknown secrets included)."""
    for pattern, repl in _TEXT_SHAPES:
        text = pattern.sub(repl, text)
    return text
