"""Condition syntax: text -> a syntax tree. No knowledge of fields, lists or macros here.

Grammar (Falco-like; keywords are lower case)::

    condition  := or
    or         := and ('or' and)*
    and        := not ('and' not)*
    not        := 'not' not | primary
    primary    := '(' or ')' | comparison | NAME          # NAME: a macro or a boolean field
    comparison := FIELD ('=' | '!=' | '<' | '<=' | '>' | '>=') (VALUE | 'val(' FIELD ')')
                | FIELD ('in' | 'cidr' | 'contains' | 'icontains' | 'startswith' | 'endswith'
                         | 'glob' | 'iglob' | 'regex' | 'pmatch' | 'intersects' | 'bcontains'
                         | 'bstartswith') (VALUE | '(' [VALUE (',' VALUE)*] ')')
                | FIELD 'exists'
    VALUE      := a bare word, or text in single or double quotes

A bare word runs until white space or one of ``( ) , ' " = < > !``; quote values holding those.
A condition appended to another one (``append``/``override``) starts with ``and`` or ``or`` and
continues the parenthesised original: :func:`parse_continuation`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

COMPARE_OPS = ("=", "!=", "<", "<=", ">", ">=")
WORD_OPS = ("in", "cidr", "contains", "icontains", "startswith", "endswith", "glob", "regex",
            # Falco's: path prefix, set overlap, hex bytes, case-insensitive glob
            "pmatch", "intersects", "bcontains", "bstartswith", "iglob")
OPERATORS = COMPARE_OPS + WORD_OPS + ("exists",)
KEYWORDS = frozenset({"and", "or", "not", *WORD_OPS, "exists"})


class ConditionSyntaxError(Exception):
    def __init__(self, message: str, pos: int, token: str) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.token = token


# ---- syntax tree ----

@dataclass(frozen=True, slots=True)
class Value:
    text: str
    quoted: bool
    pos: int
    #: ``val(FIELD)``: the value of another field of the same event (Falco's); ``text`` names it
    ref: bool = False


@dataclass(frozen=True, slots=True)
class Compare:
    field: str            # as written, e.g. "proc.aname[2]"
    op: str
    values: tuple[Value, ...]
    parenthesised: bool   # values were given as "( ... )"
    pos: int


@dataclass(frozen=True, slots=True)
class Ref:
    """A bare name: a macro, or a boolean field used as a predicate."""

    name: str
    pos: int


@dataclass(frozen=True, slots=True)
class And:
    items: tuple["Node", ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple["Node", ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: "Node"


@dataclass(frozen=True, slots=True)
class Base:
    """Stands for the condition an appended piece continues."""


Node = Compare | Ref | And | Or | Not | Base


# ---- tokens ----

@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str    # "word", "str", "op", "(", ")", ",", "base", "end"
    text: str
    pos: int


_STOP = set(" \t\r\n(),'\"=<>!")


def tokenize(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c in "(),":
            out.append(_Tok(c, c, i))
            i += 1
        elif c in "'\"":
            end = text.find(c, i + 1)
            if end < 0:
                raise ConditionSyntaxError(f"unterminated quoted value starting {text[i:i + 20]!r}", i, c)
            out.append(_Tok("str", text[i + 1:end], i))
            i = end + 1
        elif c in "=<>!":
            two = text[i:i + 2]
            if two in ("!=", "<=", ">="):
                out.append(_Tok("op", two, i))
                i += 2
            elif c == "!":
                raise ConditionSyntaxError("'!' is not an operator (use 'not' or '!=')", i, c)
            else:
                out.append(_Tok("op", c, i))
                i += 1
        else:
            j = i
            while j < n and text[j] not in _STOP:
                j += 1
            out.append(_Tok("word", text[i:j], i))
            i = j
    out.append(_Tok("end", "", n))
    return out


def suggest(word: str, choices: object) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)  # type: ignore[arg-type]
    return f" (did you mean '{close[0]}'?)" if close else ""


class _Parser:
    def __init__(self, tokens: list[_Tok]) -> None:
        self.toks = tokens
        self.i = 0

    def peek(self, ahead: int = 0) -> _Tok:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def is_kw(self, tok: _Tok, word: str) -> bool:
        return tok.kind == "word" and tok.text == word

    def fail(self, message: str, tok: _Tok) -> ConditionSyntaxError:
        return ConditionSyntaxError(message, tok.pos, tok.text)

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise self.fail("the condition is empty", self.peek())
        node = self.parse_or()
        tok = self.peek()
        if tok.kind != "end":
            if tok.kind == ")":
                raise self.fail("unbalanced ')'", tok)
            raise self.fail(f"expected 'and' or 'or' before {_show(tok)}", tok)
        return node

    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while self.is_kw(self.peek(), "or"):
            self.take()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def parse_and(self) -> Node:
        items = [self.parse_not()]
        while self.is_kw(self.peek(), "and"):
            self.take()
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else And(tuple(items))

    def parse_not(self) -> Node:
        if self.is_kw(self.peek(), "not"):
            self.take()
            return Not(self.parse_not())
        return self.parse_primary()

    def parse_primary(self) -> Node:
        tok = self.take()
        if tok.kind == "base":
            return Base()
        if tok.kind == "(":
            node = self.parse_or()
            close = self.take()
            if close.kind != ")":
                raise self.fail(f"expected ')' to close a '(', got {_show(close)}", close)
            return node
        if tok.kind == "end":
            raise self.fail("the condition ends where a clause is expected", tok)
        if tok.kind != "word":
            raise self.fail(f"expected a field, a macro or '(', got {_show(tok)}", tok)
        if tok.text in KEYWORDS:
            raise self.fail(f"expected a field, a macro or '(', got the keyword '{tok.text}'", tok)
        nxt = self.peek()
        if nxt.kind == "op":
            self.take()
            return Compare(tok.text, nxt.text, (self.value(nxt.text),), False, tok.pos)
        if nxt.kind == "word" and nxt.text == "exists":
            self.take()
            return Compare(tok.text, "exists", (), False, tok.pos)
        if nxt.kind == "word" and nxt.text in WORD_OPS:
            self.take()
            if self.peek().kind == "(":
                return Compare(tok.text, nxt.text, self.value_list(), True, tok.pos)
            return Compare(tok.text, nxt.text, (self.value(nxt.text),), False, tok.pos)
        ends_clause = nxt.kind in (")", "end") or (nxt.kind == "word" and nxt.text in ("and", "or"))
        if not ends_clause and nxt.kind == "word" and "." in tok.text:
            raise self.fail(f"unknown operator '{nxt.text}'{suggest(nxt.text, OPERATORS)}", nxt)
        if not ends_clause:
            raise self.fail(f"expected an operator, 'and', 'or' or ')' after '{tok.text}', got {_show(nxt)}", nxt)
        return Ref(tok.text, tok.pos)

    def value(self, op: str) -> Value:
        tok = self.take()
        if tok.kind == "word" and tok.text == "val" and self.peek().kind == "(":
            self.take()
            name = self.take()
            close = self.take()
            if name.kind != "word" or close.kind != ")":
                raise self.fail("val() takes one field name: val(proc.pname)", name)
            return Value(name.text, False, name.pos, ref=True)
        if tok.kind == "op" and tok.text in ("<", ">") and op in ("=", "!="):
            return Value(tok.text, False, tok.pos)     # Falco's evt.dir = <
        if tok.kind == "word" and tok.text not in ("and", "or", "not"):
            return Value(tok.text, False, tok.pos)
        if tok.kind == "str":
            return Value(tok.text, True, tok.pos)
        raise self.fail(f"expected a value after '{op}', got {_show(tok)}", tok)

    def value_list(self) -> tuple[Value, ...]:
        self.take()
        values: list[Value] = []
        while True:
            tok = self.take()
            if tok.kind == ")":
                return tuple(values)
            if tok.kind == "word":
                values.append(Value(tok.text, False, tok.pos))
            elif tok.kind == "str":
                values.append(Value(tok.text, True, tok.pos))
            elif tok.kind == "end":
                raise self.fail("a value list '( ...' is not closed", tok)
            else:
                raise self.fail(f"expected a value in the list, got {_show(tok)}", tok)
            sep = self.take()
            if sep.kind == ")":
                return tuple(values)
            if sep.kind != ",":
                raise self.fail(f"expected ',' or ')' in the list, got {_show(sep)}", sep)


def _show(tok: _Tok) -> str:
    if tok.kind == "end":
        return "the end of the condition"
    if tok.kind == "str":
        return f"the quoted value {tok.text!r}"
    return f"'{tok.text}'"


def parse(text: str) -> Node:
    """Parse a condition; raises :class:`ConditionSyntaxError` with the position of the problem."""
    return _Parser(tokenize(text)).parse()


def parse_continuation(text: str) -> Node:
    """Parse an appended piece (``and ...`` / ``or ...``); :class:`Base` stands for the original."""
    tokens = tokenize(text)
    first = tokens[0]
    if not (first.kind == "word" and first.text in ("and", "or")):
        raise ConditionSyntaxError("an appended condition must start with 'and' or 'or'", first.pos, first.text)
    return _Parser([_Tok("base", "", 0), *tokens]).parse()
