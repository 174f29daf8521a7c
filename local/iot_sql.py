"""AWS IoT SQL (version 2016-03-23), the subset template.yaml's rules use: compiled at start-up, run per message.

`compile_sql` parses `SELECT <items> FROM '<topic filter>' [WHERE <condition>]` and raises
`UnsupportedSql`, naming the construct and its position, for anything outside the subset, so a rule
the local rules engine cannot evaluate stops the stack when it starts instead of being skipped.

Semantics follow AWS's SQL reference for 2016-03-23 (docs/local-stack.md has the table):

- a field the payload lacks is Undefined, and so is any operator or CASE applied to Undefined
  (only isUndefined() looks at it); a SELECT item whose value is Undefined is left out;
- `*` copies the payload object; a later item overwrites an earlier key of the same name;
- AND, OR and NOT take Booleans or the strings "true"/"false" (any case), else give Undefined;
- comparing or computing with values of different types gives Undefined (Int and Decimal are
  both numbers), and so does division by zero; Int op Int stays Int (`/` truncates toward zero);
- whole numbers such as 10.0 are Ints in this SQL version, in the payload as in the result;
- the WHERE clause keeps a message only when it is exactly the Boolean true.

The payload must be a JSON object. IoT Core would treat anything else as a binary payload, which
none of our rules is written for: `evaluate` raises `RuleEvaluationError`, and the router sends the
message to the rule's error action.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

MAX_INT_DIGITS = 34
"""IoT SQL's Int holds 34 digits; a whole Decimal beyond that stays a Decimal."""
UNKNOWN_CLIENT_ID = "n/a"
"""What clientid() returns for a message not published over MQTT (IoT Core documents "n/a")."""


class _Undefined:
    """IoT SQL's Undefined: not a value, never serialised; a SELECT item that is Undefined is left out."""

    def __repr__(self) -> str:
        return "Undefined"


UNDEFINED: Final = _Undefined()


class UnsupportedSql(ValueError):
    """A rule's SQL uses a construct the local rules engine does not evaluate (or is not valid SQL)."""

    def __init__(self, construct: str, position: int, sql: str) -> None:
        self.construct = construct
        self.position = position
        self.sql = sql
        one_line = sql.replace("\n", " ").replace("\r", " ")
        super().__init__(
            f"unsupported IoT SQL: {construct} at position {position}\n    {one_line}\n    {' ' * position}^"
        )


class RuleEvaluationError(Exception):
    """A message the rule cannot evaluate (not a JSON object): IoT Core would run the rule's error action."""


# ---------------------------------------------------------------- values


def _number(value: int | float) -> Any:
    """A number as SQL 2016-03-23 holds it: a whole Decimal is an Int; a non-finite result is Undefined."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return UNDEFINED
        if value.is_integer() and abs(value) < 10**MAX_INT_DIGITS:
            return int(value)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    if _is_number(value):
        return "number"
    return type(value).__name__


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _compare(op: str, left: Any, right: Any) -> Any:
    if left is UNDEFINED or right is UNDEFINED or _kind(left) != _kind(right):
        return UNDEFINED
    if op in ("=", "<>", "!="):
        return (left == right) == (op == "=")
    if isinstance(left, bool) or not isinstance(left, int | float | str):  # Booleans, Null, arrays, objects
        return UNDEFINED
    result: bool = {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
    return result


def _arithmetic(op: str, left: Any, right: Any) -> Any:
    if not (_is_number(left) and _is_number(right)):
        return UNDEFINED
    if op == "+":
        return _number(left + right)
    if op == "-":
        return _number(left - right)
    if op == "*":
        return _number(left * right)
    if right == 0:
        return UNDEFINED
    if isinstance(left, int) and isinstance(right, int):
        quotient = abs(left) // abs(right)
        return quotient if (left >= 0) == (right >= 0) else -quotient
    return _number(left / right)


def _parse_payload(payload: bytes) -> dict[str, Any]:
    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    def whole_is_int(text: str) -> Any:
        value = float(text)  # beyond a double (1e400) it is inf, as Lambda's own json.loads would read it
        return _number(value) if math.isfinite(value) else value

    try:
        document = json.loads(payload.decode("utf-8"), parse_float=whole_is_int, parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RuleEvaluationError(f"payload is not JSON ({exc}); IoT Core would treat it as binary") from exc
    except RecursionError as exc:  # nested deeper than the parser's recursion limit (about 1,000 levels)
        raise RuleEvaluationError("payload is JSON nested too deeply to parse") from exc
    if not isinstance(document, dict):
        raise RuleEvaluationError(f"payload is a JSON {type(document).__name__}, not an object")
    return document


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class MessageContext:
    """What an expression can see of one message."""

    payload: dict[str, Any]
    topic: str
    client_id: str
    now_ms: int


class Expr:
    """A compiled expression."""

    def eval(self, message: MessageContext) -> Any:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Literal(Expr):
    value: Any

    def eval(self, message: MessageContext) -> Any:
        return self.value


@dataclass(frozen=True, slots=True)
class Field(Expr):
    path: tuple[str, ...]

    def eval(self, message: MessageContext) -> Any:
        value: Any = message.payload
        for name in self.path:
            if not isinstance(value, dict) or name not in value:
                return UNDEFINED
            value = value[name]
        return value


@dataclass(frozen=True, slots=True)
class Call(Expr):
    name: str
    args: tuple[Expr, ...]

    def eval(self, message: MessageContext) -> Any:
        if self.name == "isundefined":
            return self.args[0].eval(message) is UNDEFINED
        if self.name == "timestamp":
            return message.now_ms
        if self.name == "clientid":
            return message.client_id
        if not self.args:  # topic()
            return message.topic
        index = self.args[0].eval(message)
        levels = message.topic.split("/")
        if isinstance(index, int) and not isinstance(index, bool) and 1 <= index <= len(levels):
            return levels[index - 1]
        return UNDEFINED


@dataclass(frozen=True, slots=True)
class Binary(Expr):
    op: str
    left: Expr
    right: Expr

    def eval(self, message: MessageContext) -> Any:
        left, right = self.left.eval(message), self.right.eval(message)
        if self.op in ("AND", "OR"):
            a, b = _as_bool(left), _as_bool(right)
            if a is None or b is None:
                return UNDEFINED
            return (a and b) if self.op == "AND" else (a or b)
        if self.op in ("+", "-", "*", "/"):
            return _arithmetic(self.op, left, right)
        return _compare(self.op, left, right)


@dataclass(frozen=True, slots=True)
class Unary(Expr):
    op: str
    operand: Expr

    def eval(self, message: MessageContext) -> Any:
        value = self.operand.eval(message)
        if self.op == "NOT":
            flag = _as_bool(value)
            return UNDEFINED if flag is None else not flag
        return _number(-value) if _is_number(value) else UNDEFINED


@dataclass(frozen=True, slots=True)
class Case(Expr):
    subject: Expr | None
    """None for the searched form (CASE WHEN condition THEN ...)."""
    whens: tuple[tuple[Expr, Expr], ...]
    otherwise: Expr | None

    def eval(self, message: MessageContext) -> Any:
        subject = UNDEFINED if self.subject is None else self.subject.eval(message)
        if self.subject is not None and subject is UNDEFINED:
            return UNDEFINED
        for test, result in self.whens:
            value = test.eval(message)
            hit = value is True if self.subject is None else _compare("=", subject, value) is True
            if hit:
                return result.eval(message)
        return UNDEFINED if self.otherwise is None else self.otherwise.eval(message)


# ---------------------------------------------------------------- the compiled rule


@dataclass(frozen=True, slots=True)
class SelectItem:
    expr: Expr | None
    """None for `*`."""
    name: str


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching: `+` is one level, a final `#` any number (none included)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False  # wildcards never match the first level of a $-topic (MQTT 3.1.1, 4.7.2)
    wanted, levels = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(wanted):
        if level == "#":
            return True
        if i >= len(levels) or level not in ("+", levels[i]):
            return False
    return len(wanted) == len(levels)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One rule's SQL, ready to run on messages."""

    sql: str
    topic_filter: str
    items: tuple[SelectItem, ...]
    where: Expr | None

    def matches(self, topic: str) -> bool:
        return topic_matches(self.topic_filter, topic)

    def evaluate(self, payload: bytes, *, topic: str, client_id: str | None, now_ms: int) -> dict[str, Any] | None:
        """The event the rule's actions receive, or None when the WHERE clause filters the message out."""
        message = MessageContext(_parse_payload(payload), topic, client_id or UNKNOWN_CLIENT_ID, now_ms)
        if self.where is not None and self.where.eval(message) is not True:
            return None
        result: dict[str, Any] = {}
        for item in self.items:
            if item.expr is None:
                result.update(message.payload)
                continue
            value = item.expr.eval(message)
            if value is not UNDEFINED:
                result[item.name] = value
        return result


# ---------------------------------------------------------------- parsing

CLAUSE_WORDS = ("SELECT", "FROM", "WHERE", "AS")
EXPRESSION_WORDS = ("AND", "OR", "NOT", "CASE", "WHEN", "THEN", "ELSE", "END", "TRUE", "FALSE", "NULL")
KEYWORDS = frozenset(CLAUSE_WORDS + EXPRESSION_WORDS)
UNSUPPORTED_WORDS = {
    "IN": "the IN operator",
    "IS": "IS (use isUndefined() or isNull())",
    "LIKE": "the LIKE operator",
    "BETWEEN": "BETWEEN",
    "SET": "the SET clause",
    "VALUE": "SELECT VALUE",
    "DISTINCT": "DISTINCT",
    "LIMIT": "LIMIT",
    "ORDER": "ORDER BY",
    "GROUP": "GROUP BY",
    "HAVING": "HAVING",
    "JOIN": "JOIN",
    "UNION": "UNION",
    "EXISTS": "EXISTS",
}
UNSUPPORTED_CHARACTERS = {
    "[": "array access '[...]'",
    "]": "array access '[...]'",
    '"': "a double-quoted string or field name",
    "`": "a backquoted field name",
    "%": "the modulo operator '%'",
    "|": "the '||' operator",
    "{": "an object literal",
    "}": "an object literal",
    ";": "';'",
    "$": "'$' (substitution template or variable)",
    "@": "'@'",
}
FUNCTIONS: dict[str, tuple[str, range]] = {
    "topic": ("topic", range(2)),
    "timestamp": ("timestamp", range(1)),
    "clientid": ("clientid", range(1)),
    "isundefined": ("isUndefined", range(1, 2)),
}
"""Supported functions (matched case-insensitively): spelling and number of arguments."""
COMPARISONS = ("=", "<>", "!=", "<=", ">=", "<", ">")

_TOKEN = re.compile(
    r"(?P<space>\s+)|(?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<string>'[^'\\]*')|(?P<op><>|!=|<=|>=|[=<>+\-*/(),.])"
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "number", "name", "string", "op" or "end"
    text: str
    position: int

    @property
    def word(self) -> str:
        return self.text.upper() if self.kind == "name" else ""


def _tokens(sql: str) -> Iterator[Token]:
    """Tokens one at a time, so that the first unsupported construct in reading order is the one reported."""
    position = 0
    while position < len(sql):
        if sql.startswith(("--", "/*"), position):
            raise UnsupportedSql("a comment", position, sql)
        match = _TOKEN.match(sql, position)
        if match is None:
            char = sql[position]
            if char == "'":
                raise UnsupportedSql("an unterminated string or a backslash escape in a string", position, sql)
            raise UnsupportedSql(UNSUPPORTED_CHARACTERS.get(char, f"the character {char!r}"), position, sql)
        kind = match.lastgroup or ""
        if kind != "space":
            yield Token(kind, match.group(), position)
        position = match.end()
    yield Token("end", "", len(sql))


class _Parser:
    def __init__(self, sql: str) -> None:
        self.sql = sql
        self._tokens = _tokens(sql)
        self.token = next(self._tokens)

    def fail(self, construct: str, token: Token | None = None) -> UnsupportedSql:
        return UnsupportedSql(construct, (token or self.token).position, self.sql)

    def take(self) -> Token:
        token = self.token
        if token.kind != "end":
            self.token = next(self._tokens)
        return token

    def accept(self, *texts: str) -> Token | None:
        token = self.token
        if (token.kind == "op" and token.text in texts) or (token.word and token.word in texts):
            return self.take()
        return None

    def expect(self, text: str, after: str) -> Token:
        token = self.accept(text)
        if token is None:
            raise self.fail(f"{self._describe(self.token)} where {text} was expected {after}")
        return token

    @staticmethod
    def _describe(token: Token) -> str:
        if token.kind == "end":
            return "the end of the statement"
        if token.word in UNSUPPORTED_WORDS:
            return UNSUPPORTED_WORDS[token.word]
        return repr(token.text)

    # statement

    def statement(self) -> CompiledRule:
        self.expect("SELECT", "at the start")
        items = [self.select_item()]
        while self.accept(","):
            items.append(self.select_item())
        self.expect("FROM", "after the SELECT list")
        source = self.take()
        if source.kind != "string":
            raise self.fail("FROM without a quoted topic filter", source)
        topic_filter = source.text[1:-1]
        problem = _topic_filter_problem(topic_filter)
        if problem:
            raise self.fail(f"an invalid topic filter ({problem})", source)
        where = self.expression() if self.accept("WHERE") else None
        if self.token.kind != "end":
            raise self.fail(f"{self._describe(self.token)} after the {'WHERE' if where else 'FROM'} clause")
        return CompiledRule(self.sql, topic_filter, tuple(items), where)

    def select_item(self) -> SelectItem:
        if self.accept("*"):
            return SelectItem(None, "*")
        start = self.token
        expr = self.expression()
        if self.accept("AS"):
            alias = self.take()
            if alias.kind != "name" or alias.word in KEYWORDS or alias.word in UNSUPPORTED_WORDS:
                raise self.fail(f"{self._describe(alias)} as an alias (a plain name was expected)", alias)
            return SelectItem(expr, alias.text)
        if isinstance(expr, Field):
            return SelectItem(expr, expr.path[-1])
        raise self.fail("an expression without an AS alias", start)

    # expressions, loosest binding first

    def expression(self) -> Expr:
        left = self.conjunction()
        while self.accept("OR"):
            left = Binary("OR", left, self.conjunction())
        return left

    def conjunction(self) -> Expr:
        left = self.negation()
        while self.accept("AND"):
            left = Binary("AND", left, self.negation())
        return left

    def negation(self) -> Expr:
        if self.accept("NOT"):
            return Unary("NOT", self.negation())
        return self.comparison()

    def comparison(self) -> Expr:
        left = self.additive()
        token = self.accept(*COMPARISONS)
        if token is None:
            return left
        right = self.additive()
        if self.token.kind == "op" and self.token.text in COMPARISONS:
            raise self.fail("chained comparisons (use AND)")
        return Binary(token.text, left, right)

    def additive(self) -> Expr:
        left = self.multiplicative()
        while token := self.accept("+", "-"):
            left = Binary(token.text, left, self.multiplicative())
        return left

    def multiplicative(self) -> Expr:
        left = self.unary()
        while token := self.accept("*", "/"):
            left = Binary(token.text, left, self.unary())
        return left

    def unary(self) -> Expr:
        if self.accept("-"):
            return Unary("-", self.unary())
        return self.primary()

    def primary(self) -> Expr:
        token = self.take()
        if token.kind == "number":
            return Literal(_number(float(token.text)) if any(c in token.text for c in ".eE") else int(token.text))
        if token.kind == "string":
            return Literal(token.text[1:-1])
        if token.text == "(":
            if self.token.word == "SELECT":
                raise self.fail("a nested SELECT")
            inner = self.expression()
            self.expect(")", "to close the parenthesis")
            return inner
        if token.word in ("TRUE", "FALSE", "NULL"):
            return Literal({"TRUE": True, "FALSE": False, "NULL": None}[token.word])
        if token.word == "CASE":
            return self.case()
        if token.word == "SELECT":
            raise self.fail("a nested SELECT", token)
        if token.kind != "name" or token.word in KEYWORDS or token.word in UNSUPPORTED_WORDS:
            raise self.fail(f"{self._describe(token)} where a value was expected", token)
        if self.accept("("):
            return self.call(token)
        path = [token.text]
        while self.accept("."):
            part = self.take()
            if part.kind != "name":
                raise self.fail(f"{self._describe(part)} in a field path (only a.b.c is supported)", part)
            path.append(part.text)
        if self.token.text == "(":
            raise self.fail(f"a method-style call {'.'.join(path)}()")
        return Field(tuple(path))

    def call(self, name: Token) -> Expr:
        spelling, arity = FUNCTIONS.get(name.text.lower(), (None, range(0)))
        if spelling is None:
            raise self.fail(f"the function {name.text}() (supported: topic, timestamp, clientid, isUndefined)", name)
        args: list[Expr] = []
        if not self.accept(")"):
            args.append(self.expression())
            while self.accept(","):
                args.append(self.expression())
            self.expect(")", f"to close {spelling}(")
        if len(args) not in arity:
            raise self.fail(f"{spelling}() with {len(args)} argument(s)", name)
        return Call(name.text.lower(), tuple(args))

    def case(self) -> Expr:
        subject = None if self.token.word == "WHEN" else self.expression()
        whens: list[tuple[Expr, Expr]] = []
        while self.accept("WHEN"):
            test = self.expression()
            self.expect("THEN", "after WHEN")
            whens.append((test, self.expression()))
        if not whens:
            raise self.fail("CASE without a WHEN clause")
        otherwise = self.expression() if self.accept("ELSE") else None
        self.expect("END", "to close CASE")
        return Case(subject, tuple(whens), otherwise)


def _topic_filter_problem(topic_filter: str) -> str:
    if not topic_filter:
        return "empty"
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be a whole level, the last one"
        if "+" in level and level != "+":
            return "'+' must be a whole level"
    return ""


def compile_sql(text: str) -> CompiledRule:
    """Parse one rule's SQL; raise UnsupportedSql, naming the construct, for anything outside the subset."""
    return _Parser(text).statement()
