"""The ``--keep`` language: which scored rows to keep, e.g. ``quality>=p60 and alignment>=2.5``.

A small language read by a tokenizer and a recursive-descent parser (nothing is ever passed to ``eval``)::

    expr  := or
    or    := and ("or" and)*
    and   := not ("and" not)*
    not   := "not" not | "(" expr ")" | term
    term  := NAME OP value
    OP    := ">=" | ">" | "<=" | "<" | "==" | "!="
    value := NUMBER | "p" NUMBER            (pNN: the score at percentile NN of the model's reference)

``NAME`` is a dimension of the model (``quality``) or its percentile column (``quality_pct``, 0-100). Keywords are
case-insensitive. A row whose score is missing (NaN) makes a term *unknown*, and logic is three-valued (``not``
of unknown is unknown, ``False and unknown`` is False, ``True or unknown`` is True): only rows whose condition is
known to be true are kept. An error names the column (1-based) of the token at fault and shows it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from agiqa.models.reference import Reference

COMPARISONS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
KEYWORDS = ("and", "or", "not")
_TOKEN = re.compile(
    r"\s*(?:(?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<op>>=|<=|==|!=|>|<)"
    r"|(?P<paren>[()])"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)
_PERCENTILE = re.compile(r"[pP](\d+(?:\.\d+)?)")


class KeepError(ValueError):
    """A ``--keep`` expression that cannot be read or does not fit the model; the message points at the column."""

    def __init__(self, text: str, column: int, message: str) -> None:
        self.text, self.column = text, column
        super().__init__(f"{message} (column {column})\n  {text}\n  {' ' * (column - 1)}^")


@dataclass(frozen=True)
class Token:
    """A piece of the expression: ``kind`` (number, op, paren, word, end), its text and 1-based column."""

    kind: str
    text: str
    column: int


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an ``end`` token.

    Raises:
        KeepError: A character that starts no token.
    """
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            column = pos + len(text[pos:]) - len(text[pos:].lstrip()) + 1
            raise KeepError(text, column, f"unexpected character {text[column - 1]!r}")
        kind = match.lastgroup or ""
        tokens.append(Token(kind, match.group(kind), match.start(kind) + 1))
        pos = match.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


@dataclass(frozen=True)
class Term:
    """``column OP threshold`` on one column of the score table."""

    column: str
    op: str
    threshold: float
    text: str

    def evaluate(self, columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        values = np.asarray(columns[self.column], dtype=np.float64)
        known = ~np.isnan(values)
        with np.errstate(invalid="ignore"):
            return known, known & COMPARISONS[self.op](values, self.threshold)


@dataclass(frozen=True)
class Not:
    """Negation (unknown stays unknown)."""

    operand: Condition

    def evaluate(self, columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        known, value = self.operand.evaluate(columns)
        return known, known & ~value


@dataclass(frozen=True)
class Both:
    """``and`` (False wins over unknown)."""

    left: Condition
    right: Condition

    def evaluate(self, columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        (k1, v1), (k2, v2) = self.left.evaluate(columns), self.right.evaluate(columns)
        false = (k1 & ~v1) | (k2 & ~v2)
        return false | (k1 & k2), v1 & v2


@dataclass(frozen=True)
class Either:
    """``or`` (True wins over unknown)."""

    left: Condition
    right: Condition

    def evaluate(self, columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        (k1, v1), (k2, v2) = self.left.evaluate(columns), self.right.evaluate(columns)
        true = v1 | v2
        return true | (k1 & k2), true


Condition = Term | Not | Both | Either


@dataclass(frozen=True)
class KeepRule:
    """A parsed ``--keep`` expression.

    Attributes:
        text: The expression as written.
        condition: Its syntax tree.
        columns: The score-table columns it reads (``quality``, ``quality_pct`` ...).
    """

    text: str
    condition: Condition
    columns: tuple[str, ...]

    def mask(self, columns: Mapping[str, Sequence[float] | np.ndarray]) -> np.ndarray:
        """Rows whose condition is known to be true (``columns`` maps each name in ``self.columns`` to values)."""
        arrays = {c: np.asarray(columns[c], dtype=np.float64) for c in self.columns}
        known, value = self.condition.evaluate(arrays)
        return known & value


class _Parser:
    def __init__(self, text: str, dimensions: Sequence[str], reference: Reference | None) -> None:
        self.text, self.tokens, self.pos = text, tokenize(text), 0
        self.dimensions, self.reference = list(dimensions), reference
        self.columns: list[str] = []

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token.kind == "word" and token.text.lower() == word:
            self.pos += 1
            return True
        return False

    def error(self, token: Token, message: str) -> KeepError:
        return KeepError(self.text, token.column, message)

    def parse(self) -> KeepRule:
        if self.peek().kind == "end":
            raise self.error(self.peek(), "empty expression; write e.g. 'quality>=p60 and alignment>=2.5'")
        condition = self.parse_or()
        if self.peek().kind != "end":
            raise self.error(self.peek(), f"expected 'and', 'or' or the end, found {self.peek().text!r}")
        return KeepRule(self.text, condition, tuple(dict.fromkeys(self.columns)))

    def parse_or(self) -> Condition:
        node = self.parse_and()
        while self.keyword("or"):
            node = Either(node, self.parse_and())
        return node

    def parse_and(self) -> Condition:
        node = self.parse_not()
        while self.keyword("and"):
            node = Both(node, self.parse_not())
        return node

    def parse_not(self) -> Condition:
        if self.keyword("not"):
            return Not(self.parse_not())
        token = self.peek()
        if token.kind == "paren" and token.text == "(":
            self.take()
            node = self.parse_or()
            close = self.take()
            if close.kind != "paren" or close.text != ")":
                raise self.error(close, f"expected ')' to close the '(' at column {token.column}")
            return node
        return self.parse_term()

    def parse_term(self) -> Term:
        name = self.take()
        if name.kind != "word" or name.text.lower() in KEYWORDS:
            found = name.text or "the end"
            raise self.error(name, f"expected a dimension ({', '.join(self.dimensions)}), found {found!r}")
        column = self.column_of(name)
        op = self.take()
        if op.kind != "op":
            found = op.text or "the end"
            raise self.error(
                op, f"expected a comparison ({' '.join(COMPARISONS)}) after {name.text!r}, found {found!r}"
            )
        value = self.take()
        threshold = self.threshold(column, value)
        self.columns.append(column)
        return Term(column, op.text, threshold, self.text[name.column - 1 : value.column - 1 + len(value.text)])

    def column_of(self, name: Token) -> str:
        pct = [f"{d}_pct" for d in self.dimensions]
        if name.text in self.dimensions:
            return name.text
        if name.text in pct:
            self.need_reference(name, name.text.removesuffix("_pct"))
            return name.text
        known = ", ".join(self.dimensions + (pct if self.reference is not None else []))
        raise self.error(name, f"unknown dimension {name.text!r}; the model has: {known}")

    def threshold(self, column: str, value: Token) -> float:
        if value.kind == "number":
            return float(value.text)
        match = _PERCENTILE.fullmatch(value.text) if value.kind == "word" else None
        if match is None:
            found = value.text or "the end"
            raise self.error(value, f"expected a number or a percentile like p60, found {found!r}")
        if column.endswith("_pct"):
            raise self.error(value, f"{column} is already a percentile; compare it with a number (0-100)")
        percentile = float(match.group(1))
        if percentile > 100:
            raise self.error(value, f"percentile {value.text} is above p100")
        return self.need_reference(value, column).value(column, percentile)

    def need_reference(self, token: Token, dim: str) -> Reference:
        if self.reference is None or dim not in self.reference.quantiles:
            raise self.error(token, f"{token.text!r} needs the model's reference distribution, which it has not")
        return self.reference


def parse_keep(text: str, dimensions: Sequence[str], reference: Reference | None = None) -> KeepRule:
    """Parse a ``--keep`` expression for a model with these dimensions (and reference, for ``pNN``).

    Args:
        text: The expression, e.g. ``quality>=p60 and alignment>=2.5``.
        dimensions: The model's dimension names.
        reference: The model's reference distribution (None: percentiles are refused).

    Raises:
        KeepError: Bad syntax, an unknown dimension, or a percentile without a reference; the message shows the
            expression with a caret under the token at fault.
    """
    return _Parser(text, dimensions, reference).parse()
