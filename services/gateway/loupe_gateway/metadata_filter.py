"""Custom Vision's image `$filter`: a small, pure parser into loupe.v1.MetadataFilter.

The SDK documents: "The expression supports eq (Equal), ne (Not equal), and (Logical and), or
(Logical or) operators. Here is an example, metadata=key1 eq 'value1' and key2 ne 'value2'."
Accepted grammar (keywords case-insensitive; `and` binds tighter than `or`, as in OData):

    filter     := ["metadata" "="] or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := term ("and" term)*
    term       := "(" or_expr ")" | comparison
    comparison := key ("eq" | "ne") string
    key        := ["metadata/"] name          name: letters, digits and _ - . : (no spaces)
    string     := "'" ... "'"                  a quote inside is written twice ('')

Anything else is refused with BadRequest naming what and where. The result travels to the
metadata service as data; it never becomes SQL text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from loupe.v1 import metadata_pb2 as mpb
from loupe_common.errors import BadRequest

MAX_FILTER_LENGTH = 4096
MAX_COMPARISONS = 50
MAX_DEPTH = 10

_OPERATORS = ("eq", "ne")
_KEYWORDS = ("and", "or") + _OPERATORS
_NAME = re.compile(r"[A-Za-z0-9_\-.:]+")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class _Token:
    kind: str  # "name", "string", "(", ")", "/", "=", "end"
    text: str
    pos: int


def _error(message: str) -> BadRequest:
    return BadRequest(f"invalid $filter: {message}", "BadRequest")


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    i = 0
    while i < len(text):
        space = _SPACE.match(text, i)
        if space:
            i = space.end()
            continue
        ch = text[i]
        if ch in "()/=":
            out.append(_Token(ch, ch, i))
            i += 1
        elif ch == "'":
            start, i, chars = i, i + 1, []
            while True:
                if i >= len(text):
                    raise _error(f"unterminated string starting at position {start}")
                if text[i] == "'":
                    if text.startswith("''", i):
                        chars.append("'")
                        i += 2
                        continue
                    i += 1
                    break
                chars.append(text[i])
                i += 1
            out.append(_Token("string", "".join(chars), start))
        else:
            name = _NAME.match(text, i)
            if not name:
                raise _error(f"unexpected character {ch!r} at position {i}")
            out.append(_Token("name", name.group(), i))
            i = name.end()
    out.append(_Token("end", "", len(text)))
    return out


class _Parser:
    def __init__(self, tokens: list[_Token]):
        self.tokens = tokens
        self.i = 0
        self.comparisons = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok.kind == "name" and tok.text.lower() == word:
            self.i += 1
            return True
        return False

    def parse(self) -> mpb.MetadataFilter:
        # The documented example starts with `metadata=`.
        if (
            self.peek().kind == "name"
            and self.peek().text.lower() == "metadata"
            and self.tokens[self.i + 1].kind == "="
        ):
            self.i += 2
        node = self.or_expr(0)
        tok = self.peek()
        if tok.kind != "end":
            raise _error(f"unexpected {_describe(tok)} at position {tok.pos}")
        return node

    def or_expr(self, depth: int) -> mpb.MetadataFilter:
        items = [self.and_expr(depth)]
        while self.keyword("or"):
            items.append(self.and_expr(depth))
        return items[0] if len(items) == 1 else _group("any", items)

    def and_expr(self, depth: int) -> mpb.MetadataFilter:
        items = [self.term(depth)]
        while self.keyword("and"):
            items.append(self.term(depth))
        return items[0] if len(items) == 1 else _group("all", items)

    def term(self, depth: int) -> mpb.MetadataFilter:
        tok = self.peek()
        if tok.kind == "(":
            if depth >= MAX_DEPTH:
                raise _error(f"parentheses nested deeper than {MAX_DEPTH}")
            self.take()
            node = self.or_expr(depth + 1)
            close = self.take()
            if close.kind != ")":
                raise _error(f"expected ')' at position {close.pos}, found {_describe(close)}")
            return node
        return self.comparison()

    def comparison(self) -> mpb.MetadataFilter:
        tok = self.take()
        if tok.kind != "name" or tok.text.lower() in _KEYWORDS:
            raise _error(f"expected a metadata key at position {tok.pos}, found {_describe(tok)}")
        key = tok.text
        if key.lower() == "metadata" and self.peek().kind == "/":
            self.take()
            tok = self.take()
            if tok.kind != "name":
                raise _error(f"expected a key after 'metadata/' at position {tok.pos}")
            key = tok.text
        op = self.take()
        if op.kind != "name" or op.text.lower() not in _OPERATORS:
            raise _error(
                f"unsupported operator {_describe(op)} at position {op.pos}"
                " (supported: eq, ne, and, or)"
            )
        value = self.take()
        if value.kind != "string":
            raise _error(
                f"expected a quoted string at position {value.pos}, found {_describe(value)}"
            )
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise _error(f"more than {MAX_COMPARISONS} comparisons")
        return mpb.MetadataFilter(
            comparison=mpb.MetadataComparison(key=key, op=op.text.lower(), value=value.text)
        )


def _describe(tok: _Token) -> str:
    if tok.kind == "end":
        return "the end of the expression"
    if tok.kind == "string":
        return f"string '{tok.text}'"
    return repr(tok.text)


def _group(kind: str, items: list[mpb.MetadataFilter]) -> mpb.MetadataFilter:
    # Flattens `a and (b and c)` into one group.
    flat: list[mpb.MetadataFilter] = []
    for item in items:
        if item.WhichOneof("node") == kind:
            flat.extend(getattr(item, kind).filters)
        else:
            flat.append(item)
    return mpb.MetadataFilter(**{kind: mpb.MetadataFilterList(filters=flat)})


def parse(text: str | None) -> mpb.MetadataFilter | None:
    """The MetadataFilter of a `$filter` value; None when it is absent or blank.

    Raises:
        BadRequest: the expression is not in the supported grammar.
    """
    if text is None or not text.strip():
        return None
    if len(text) > MAX_FILTER_LENGTH:
        raise _error(f"longer than {MAX_FILTER_LENGTH} characters")
    return _Parser(_tokens(text)).parse()
