"""Condition syntax: precedence, values, lists, continuations, and syntax errors."""

from __future__ import annotations

import pytest

from coi_sentinel.rules.parser import (
    And,
    Base,
    Compare,
    ConditionSyntaxError,
    Not,
    Or,
    Ref,
    Value,
    parse,
    parse_continuation,
)

pytestmark = pytest.mark.unit


def v(text: str, pos: int, quoted: bool = False) -> Value:
    return Value(text, quoted, pos)


def test_precedence_not_then_and_then_or() -> None:
    assert parse("a or b and not c") == Or((Ref("a", 0), And((Ref("b", 5), Not(Ref("c", 15))))))
    assert parse("(a or b) and c") == And((Or((Ref("a", 1), Ref("b", 6))), Ref("c", 13)))
    assert parse("not not a") == Not(Not(Ref("a", 8)))


def test_comparisons_with_and_without_spaces() -> None:
    assert parse("proc.name=bash") == Compare("proc.name", "=", (v("bash", 10),), False, 0)
    assert parse("user.uid >= 1000") == Compare("user.uid", ">=", (v("1000", 12),), False, 0)
    assert parse("x.y != 'a b'") == Compare("x.y", "!=", (v("a b", 7, True),), False, 0)
    assert parse('x.y < "3"') == Compare("x.y", "<", (v("3", 6, True),), False, 0)


def test_value_lists_and_word_operators() -> None:
    assert parse("proc.name in (bash, 'z sh', shells)") == Compare(
        "proc.name", "in", (v("bash", 14), v("z sh", 20, True), v("shells", 28)), True, 0)
    assert parse("proc.name in ()") == Compare("proc.name", "in", (), True, 0)
    assert parse("file.path startswith /tmp/") == Compare("file.path", "startswith", (v("/tmp/", 21),), False, 0)
    assert parse("proc.pname exists") == Compare("proc.pname", "exists", (), False, 0)
    assert parse("a.b in (x,)") == Compare("a.b", "in", (v("x", 8),), True, 0)


def test_bare_names_are_refs() -> None:
    assert parse("proc.is_shell and my_macro") == And((Ref("proc.is_shell", 0), Ref("my_macro", 18)))


def test_continuation_puts_the_original_first() -> None:
    assert parse_continuation("and not x") == And((Base(), Not(Ref("x", 8))))
    assert parse_continuation("or x and y") == Or((Base(), And((Ref("x", 3), Ref("y", 9)))))


@pytest.mark.parametrize("text, message, token", [
    ("file.path startwith /x", "unknown operator 'startwith' (did you mean 'startswith'?)", "startwith"),
    ("proc.name regexp x", "unknown operator 'regexp' (did you mean 'regex'?)", "regexp"),
    ("a and", "the condition ends where a clause is expected", ""),
    ("(a", "expected ')' to close a '(', got the end of the condition", ""),
    ("a)", "unbalanced ')'", ")"),
    ("a b", "expected an operator, 'and', 'or' or ')' after 'a', got 'b'", "b"),
    ("proc.name =", "expected a value after '=', got the end of the condition", ""),
    ("proc.name = and", "expected a value after '=', got 'and'", "and"),
    ("x.y in (a b)", "expected ',' or ')' in the list, got 'b'", "b"),
    ("x.y in (a,", "a value list '( ...' is not closed", ""),
    ("x.y in (a, (b))", "expected a value in the list, got '('", "("),
    ("x.y = 'ab", "unterminated quoted value starting \"'ab\"", "'"),
    ("a ! b", "'!' is not an operator (use 'not' or '!=')", "!"),
    ("", "the condition is empty", ""),
    ("and x", "expected a field, a macro or '(', got the keyword 'and'", "and"),
    ("a or or b", "expected a field, a macro or '(', got the keyword 'or'", "or"),
    ("= x", "expected a field, a macro or '(', got '='", "="),
])
def test_syntax_errors(text: str, message: str, token: str) -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse(text)
    assert info.value.message == message
    assert info.value.token == token
    if token:
        assert text[info.value.pos:].startswith(token)


def test_continuation_must_start_with_and_or_or() -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse_continuation("not x")
    assert info.value.message == "an appended condition must start with 'and' or 'or'"
