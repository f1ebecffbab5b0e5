"""Kubernetes names as the API accepts them: DNS-1123 labels and subdomains, with the sentence a refusal gives."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL = re.compile(_LABEL)
DNS1123_SUBDOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
MIGRATION_ID = re.compile(r"[a-z0-9-]{1,63}")

LABEL_MAX = 63
SUBDOMAIN_MAX = 253

LABEL_PROBLEM = (
    "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit,"
    f" at most {LABEL_MAX} characters"
)
SUBDOMAIN_PROBLEM = (
    "must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or"
    f" digit, at most {SUBDOMAIN_MAX} characters"
)

LABEL_PATTERN = f"^{DNS1123_LABEL.pattern}$"
SUBDOMAIN_PATTERN = f"^{DNS1123_SUBDOMAIN.pattern}$"
# The refusal of a name that does not match its pattern, by pattern (what pydantic's error carries in its context).
PATTERN_PROBLEMS = {LABEL_PATTERN: LABEL_PROBLEM, SUBDOMAIN_PATTERN: SUBDOMAIN_PROBLEM}

Label = Annotated[str, StringConstraints(min_length=1, max_length=LABEL_MAX, pattern=LABEL_PATTERN)]
Subdomain = Annotated[str, StringConstraints(min_length=1, max_length=SUBDOMAIN_MAX, pattern=SUBDOMAIN_PATTERN)]


def is_name(value: str, pattern: re.Pattern[str], max_length: int) -> bool:
    return len(value) <= max_length and pattern.fullmatch(value) is not None
