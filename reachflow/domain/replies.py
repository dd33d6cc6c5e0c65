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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reachflow.domain.compliance.reactions import is_opt_out
from reachflow.domain.enums import OUTCOME_GROUPS, Disposition
from reachflow.domain.graph import (
    OPTED_OUT,
    REPLIED,
    REPLY_OUTCOMES,
    SKIPPED,
    ReplyBranch,
    ReplyWait,
)

MAX_REPLY = 1600
MAX_PATTERN = 200
MAX_KEYWORDS = 50
MAX_BRANCHES = 20
#: A branch's name (Feather ``name``, graph ``label``).
LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
#: Names a branch may not take, in either form: the reply outcomes, ``default``, ``next``,
#: the skipped outcome, every disposition and every disposition group. (A branch's edge is
#: matched as any edge is: one named ``failed`` would also take a text that was not sent.)
RESERVED_LABELS = frozenset(
    {o.upper() for o in REPLY_OUTCOMES}
    | {"DEFAULT", "NEXT", SKIPPED}
    | set(OUTCOME_GROUPS)
    | {d.value for d in Disposition}
)


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


# -- parsing a branch (both API forms) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BranchForm:
    """How one API form spells a branch: Feather ``{name, keywords | regex | optOut, then}``,
    the graph's ``{label, keywords | regex}``."""

    name_key: str
    tests: tuple[str, ...]
    name_rule: str
    reserved_hint: str = ""
    #: A branch without a name is ``branch_<n>`` (else the name is required).
    default_names: bool = False


@dataclass(frozen=True, slots=True)
class ParsedBranch:
    """A branch as read, with every problem found (``(field path, message)``, in the order
    checked: name, the one test, keywords, regex). ``keywords`` and ``pattern`` are None
    when absent or unusable; ``name`` is what was given when it is unusable."""

    name: Any
    opt_out: bool = False
    keywords: tuple[str, ...] | None = None
    pattern: str | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)

    def branch(self) -> ReplyBranch:
        return ReplyBranch(label=str(self.name), keywords=self.keywords or (), pattern=self.pattern)


def parse_branch(item: Mapping[str, Any], index: int, path: str, form: BranchForm) -> ParsedBranch:
    """Read one branch object (its unknown keys are the caller's to report)."""
    problems: list[tuple[str, str]] = []
    key = form.name_key
    opt_out = "optOut" in form.tests and item.get("optOut", False) is not False
    if opt_out:
        if item.get("optOut") is not True:
            problems.append((f"{path}.optOut", "must be true (or left out)"))
        name: Any = OPTED_OUT
        if key in item and item[key] != OPTED_OUT:
            problems.append((f"{path}.{key}", f"an optOut branch is named {OPTED_OUT!r}"))
    else:
        name = item.get(key, f"branch_{index + 1}" if form.default_names else None)
        if not isinstance(name, str) or not LABEL.fullmatch(name):
            problems.append((f"{path}.{key}", form.name_rule))
        elif name.upper() in RESERVED_LABELS:
            problems.append((f"{path}.{key}", f"{name!r} is reserved{form.reserved_hint}"))
    given = [k for k in form.tests if k in item]
    if len(given) != 1:
        spelled = f"{', '.join(form.tests[:-1])} or {form.tests[-1]}"
        problems.append((path, f"give exactly one of {spelled}"))
    keywords: tuple[str, ...] | None = None
    if "keywords" in item:
        raw = item["keywords"]
        if (
            not isinstance(raw, list)
            or not raw
            or len(raw) > MAX_KEYWORDS
            or not all(isinstance(k, str) and k.strip() and len(k) <= 100 for k in raw)
        ):
            problems.append(
                (
                    f"{path}.keywords",
                    f"must be 1 to {MAX_KEYWORDS} non-empty words or phrases (100 characters each)",
                )
            )
        else:
            keywords = tuple(raw)
    pattern: str | None = None
    if "regex" in item:
        problem = pattern_problem(item["regex"])
        if problem is not None:
            problems.append((f"{path}.regex", problem))
        else:
            pattern = str(item["regex"])
    return ParsedBranch(name, opt_out, keywords, pattern, problems)
