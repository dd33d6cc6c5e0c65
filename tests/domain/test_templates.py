"""``{{placeholder}}`` syntax and rendering."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reachflow.domain.templates import TemplateSyntaxError, placeholder_names, render

SEED_002 = (
    "Hi {{firstName}}, following up on our earlier outreach. Let me know if you want to reconnect."
)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("no placeholders", []),
        (SEED_002, ["firstName"]),
        ("{{ first_name }} and {{_x}}", ["first_name", "_x"]),
        (
            "{{metadata.campaign}} {{variables.firstName}}",
            ["metadata.campaign", "variables.firstName"],
        ),
        ("{{a}}{{a}}", ["a", "a"]),
        ("single {braces} are text", []),
        ("", []),
    ],
)
def test_placeholder_names(text: str, names: list[str]) -> None:
    assert placeholder_names(text) == names


@pytest.mark.parametrize(
    "text",
    [
        "Hi {{firstName}",
        "Hi {{firstName",
        "Hi firstName}}",
        "{{}}",
        "{{ }}",
        "{{1st}}",
        "{{first name}}",
        "{{first-name}}",
        "{{a.}}",
        "{{.a}}",
        "ok {{a}} then {{b",
    ],
)
def test_placeholder_syntax_errors(text: str) -> None:
    with pytest.raises(TemplateSyntaxError, match="malformed placeholder"):
        placeholder_names(text)


def test_syntax_error_is_a_value_error() -> None:
    assert issubclass(TemplateSyntaxError, ValueError)


def test_render_seed_002() -> None:
    out = render(SEED_002, {"firstName": "Taylor"}, {"firstName": "Ignored"})
    assert out.startswith("Hi Taylor, following up")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{firstName}}", "Taylor"),  # variables first
        ("{{campaign}}", "renewal-q2"),  # then metadata
        ("{{missing}}", ""),  # missing renders empty
        ("[{{ missing }}]", "[]"),
        ("{{metadata.firstName}}", "Meta"),
        ("{{variables.campaign}}", ""),
        ("{{variables.firstName}}", "Taylor"),
        ("{{age}} years", "42 years"),
        ("{{nothing}}", ""),
        ("{{other.path}}", "dotted"),
        ("plain text", "plain text"),
        ("{{{firstName}}}", "{Taylor}"),  # single braces around a placeholder stay text
    ],
)
def test_render(text: str, expected: str) -> None:
    variables = {"firstName": "Taylor", "age": 42, "nothing": None, "other.path": "dotted"}
    metadata = {"firstName": "Meta", "campaign": "renewal-q2"}
    assert render(text, variables, metadata) == expected


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
plain = st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=10)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(plain, names), max_size=4), plain, st.dictionaries(names, plain))
def test_render_leaves_no_braces(
    parts: list[tuple[str, str]], tail: str, variables: dict[str, str]
) -> None:
    text = "".join(f"{p}{{{{{n}}}}}" for p, n in parts) + tail
    assert placeholder_names(text) == [n for _, n in parts]
    out = render(text, variables, {})
    assert "{{" not in out
    assert "}}" not in out
    assert out == "".join(p + variables.get(n, "") for p, n in parts) + tail
