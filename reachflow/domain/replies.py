"""What a contact's reply to a waiting step means: which branch it takes.

Rule 1: an opt-out reply (``compliance.reactions.is_opt_out``: STOP and its kin) is
``opted_out`` whatever the branches say; the runtime suppresses the number as for any opt-out.
Rule 2: otherwise the branches are tried in order; the first that matches names the outcome.
Rule 3: a reply no branch matches is ``replied``.

Keywords match whole words or phrases, ignoring case, accents and punctuation around them
(``"yes"`` matches "Yes!", "yes please", not "yesterday"). A pattern is a regular expression
searched anywhere in the reply, ignoring case. Replies are cut to ``MAX_REPLY`` characters
before matching, and patterns are at most ``MAX_PATTERN`` long (checked when saved).
"""

from __future__ import annotations

import re
import unicodedata

from reachflow.domain.compliance.reactions import is_opt_out
from reachflow.domain.graph import OPTED_OUT, REPLIED, ReplyBranch, ReplyWait

MAX_REPLY = 1600
MAX_PATTERN = 200
MAX_KEYWORDS = 50
MAX_BRANCHES = 20


def normalize(text: str) -> str:
    """Lower case, accents dropped, every run of non-word characters one space."""
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[\W_]+", " ", plain.lower()).split())


def keyword_in(keyword: str, reply: str) -> bool:
    wanted = normalize(keyword)
    if not wanted:
        return False
    return f" {wanted} " in f" {normalize(reply)} "


def branch_matches(branch: ReplyBranch, reply: str) -> bool:
    text = reply[:MAX_REPLY]
    if any(keyword_in(k, text) for k in branch.keywords):
        return True
    if branch.pattern is not None:
        try:
            return re.search(branch.pattern, text, re.IGNORECASE) is not None
        except re.error:
            return False
    return False


def classify(reply: str, wait: ReplyWait) -> str:
    """The outcome of ``reply`` (Rules 1-3)."""
    if is_opt_out(reply[:MAX_REPLY]):
        return OPTED_OUT
    for branch in wait.branches:
        if branch_matches(branch, reply):
            return branch.label
    return REPLIED


def pattern_problem(pattern: object) -> str | None:
    """Why ``pattern`` is not a usable branch pattern, or None."""
    if not isinstance(pattern, str) or not pattern:
        return "must be a non-empty regular expression"
    if len(pattern) > MAX_PATTERN:
        return f"must be at most {MAX_PATTERN} characters"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"not a regular expression: {exc}"
    return None
