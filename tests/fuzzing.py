"""Hostile input for the bad-input campaigns: what a broken or malicious device can put in a payload.

Every strategy here draws a (category, payload) pair, so that a campaign can check each category it
promises and print how many payloads of each it ran. The categories are the issue's list:

- ``wrong_type``, ``missing_field``, ``nan_infinity``, ``huge_number``: a field of the right name
  with the wrong content, or no field at all.
- ``oversize``: payloads around and above the 128 KB AWS IoT Core accepts in one message.
- ``deep_nesting``: lists and dicts nested hundreds of levels deep.
- ``non_utf8``: the ways undecodable bytes can reach a handler. IoT Core hands a Lambda action JSON
  only (a binary payload must be base64-encoded by the rule first), and Lambda decodes it before
  the handler runs, so raw bytes never reach a deployed function. What does: JSON may spell a lone
  surrogate (``"\\udcff"``), which ``json.loads`` decodes into a ``str`` that no UTF-8 encoder
  accepts (what a lossy ``surrogateescape`` decode of bad bytes leaves behind, too). A local
  harness (the local stack, a test) may also call a handler with the payload still JSON text,
  which Powertools' parser decodes itself, or as ``bytes``: both are sent as well.
- ``lookalike_id``: motor ids that read like a real one (Cyrillic letters, fullwidth digits,
  zero-width joiners, bidirectional marks, a trailing newline).
- ``injection_id``: motor ids that try to climb out of a path or widen an MQTT topic filter
  (``../x``, ``motor-1/#``, ``+``, NUL, percent-encoding, 10,000 characters).
- ``topic_mismatch``: a payload whose ``motor_id`` names another motor than its topic does.
- ``not_an_object``: a payload that is not a JSON object at all.
- ``valid``: a well-formed payload for a motor of :data:`VALID_MOTORS` (the control group: it must
  be applied, and touch its own motor only).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st

from tests.reports import Tally, registered
from tests.support import load_event

IOT_MAX_MESSAGE_BYTES = 128 * 1024
"""AWS IoT Core refuses a larger MQTT message; the oversize payloads go to twice that."""

DEEPEST = 1000
"""Levels of the deepest nesting drawn: about the most json.loads decodes on Python 3.11 (992 on a new
thread). test_handler_fuzz.py also sends each handler the deepest the running Python decodes (about
10,000 levels on 3.13)."""

BYSTANDERS = ("motor-002", "motor-003")
"""Motors with state that no well-formed payload of a campaign is addressed to: they must never change."""
VALID_MOTORS = ("motor-001", "motor-007", "AWS98765")
"""Motors with state that the ``valid`` payloads are addressed to."""
NEW_MOTORS = tuple(f"pump-{n}" for n in range(100, 130))
"""Motors without state until a ``valid`` reading arrives: a motor's first reading is always applied."""
VICTIMS = BYSTANDERS + VALID_MOTORS

CATEGORIES = (
    "wrong_type",
    "missing_field",
    "nan_infinity",
    "huge_number",
    "oversize",
    "deep_nesting",
    "non_utf8",
    "lookalike_id",
    "injection_id",
    "topic_mismatch",
    "not_an_object",
    "valid",
)
SECURITY_CATEGORIES = frozenset({"lookalike_id", "injection_id", "topic_mismatch"})
"""A payload of these categories must be refused however well-formed the rest of it is."""

# --- motor ids that are not what they look like ----------------------------------------------

CONFUSABLES: Mapping[str, tuple[str, ...]] = {
    "o": ("\u043e", "\u03bf", "\u0585", "\uff4f"),  # Cyrillic, Greek, Armenian, fullwidth
    "a": ("\u0430", "\u03b1", "\uff41"),
    "e": ("\u0435", "\u0454", "\uff45"),
    "c": ("\u0441", "\u03f2"),
    "p": ("\u0440", "\u03c1"),
    "r": ("\u0433", "\uff52"),
    "t": ("\u0442", "\uff54"),
    "m": ("\u043c", "\uff4d", "\u217f"),  # Roman numeral one thousand
    "0": ("\u041e", "\u039f", "\uff10", "\u0660", "\U0001d7ce"),  # O look-alikes, fullwidth, Arabic-Indic, bold
    "1": ("\u0406", "\u04c0", "\uff11", "\u0661", "\u00b9", "\u2160"),
    "2": ("\uff12", "\u00b2", "\u0662"),
    "3": ("\uff13", "\u00b3", "\u0417"),
    "7": ("\uff17", "\u0667"),
    "-": ("\u2010", "\u2011", "\u2012", "\u2013", "\u2212", "\ufe63", "\uff0d", "\u02d7"),
    "A": ("\u0410", "\u0391", "\uff21"),
    "W": ("\u051c", "\uff37"),
    "S": ("\u0405", "\uff33"),
    "9": ("\uff19",),
    "8": ("\uff18", "\u0668"),
    "6": ("\uff16", "\u0431"),
    "5": ("\uff15", "\u01bc"),
}
INVISIBLES = (
    "\u200b",  # zero-width space
    "\u200c",  # zero-width non-joiner
    "\u200d",  # zero-width joiner
    "\u2060",  # word joiner
    "\ufeff",  # byte-order mark
    "\u00ad",  # soft hyphen
    "\u200e",  # left-to-right mark
    "\u200f",  # right-to-left mark
    "\u202e",  # right-to-left override
    "\u2066",  # left-to-right isolate
    "\u0301",  # combining acute accent
    "\u034f",  # combining grapheme joiner
    "\ufe0f",  # variation selector
)
SPACES = (" ", "\t", "\n", "\r", "\u00a0", "\u3000", "\u2007")


@st.composite
def lookalike_ids(draw: st.DrawFn, victim: str) -> str:
    """The victim's id with one character swapped for a look-alike, or an invisible one slipped in."""
    how = draw(st.sampled_from(("confusable", "invisible", "space", "fullwidth")))
    if how == "confusable":
        index = draw(st.sampled_from([i for i, char in enumerate(victim) if char in CONFUSABLES]))
        return victim[:index] + draw(st.sampled_from(CONFUSABLES[victim[index]])) + victim[index + 1 :]
    if how == "fullwidth":
        return "".join(chr(ord(char) + 0xFEE0) for char in victim)
    index = draw(st.integers(0, len(victim)))
    mark = draw(st.sampled_from(INVISIBLES if how == "invisible" else SPACES))
    return victim[:index] + mark + victim[index:]


INJECTIONS = (
    "../x",
    "../../etc/passwd",
    "..\\..\\windows",
    "motor-1/#",
    "#",
    "+",
    "motor/+/telemetry",
    "motor/../../",
    "a\u0000b",
    "motor-001\u0000",
    "motors/motor-002/actions",
    "$aws/things/motor-002/shadow/update",
    "%2e%2e%2fmotor-002",
    "motor-001%2F..%2Fmotor-002",
    "${iot:Connection.Thing.ThingName}",
    "motor-001\r\nX-Injected: 1",
    "*",
    "",
    " ",
    "motor-001\u2215motor-002",  # division slash, looks like /
    "motor-001\uff0fmotor-002",  # fullwidth solidus
    "motor-001/telemetry",
    "/motor-002",
    "motor-002'; DROP TABLE motors;--",
    "motor-002\u0000/../motor-003",
)
_PREFIXES = ("../", "/", "#", "+/", "\u0000", "%2F", "$aws/", "motors/", "..\\", "~/")
_SUFFIXES = ("/#", "/+", "/../motor-002", "/telemetry", "\u0000", "%00", "/", "#", "?x=1", "/.")


@st.composite
def injection_ids(draw: st.DrawFn, victim: str) -> str:
    """An id that would widen a topic filter, leave a key prefix or overflow a field if taken as is."""
    how = draw(st.sampled_from(("known", "wrapped", "long")))
    if how == "known":
        return draw(st.sampled_from(INJECTIONS))
    if how == "wrapped":
        prefix = draw(st.sampled_from(("", *_PREFIXES)))
        suffix = draw(st.sampled_from(_SUFFIXES if not prefix else ("", *_SUFFIXES)))
        return prefix + victim + suffix
    # Longer than the 64 characters an IoT thing name may have: up to 10,000.
    return (victim * 10_000)[: draw(st.integers(65, 10_000))]


# --- values a field should never hold -----------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def json_kind(value: Any) -> str:
    """The JSON type of a decoded value (bool is not a number, int and float are)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


VALUES_OF_KIND: Mapping[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "number": st.integers(-(2**31), 2**31) | st.floats(allow_nan=False, allow_infinity=False),
    # Strings that a lax parser would turn into the number or boolean the field wanted.
    "string": st.sampled_from(["1", "0", "true", "false", "NaN", "1e3", "2026-11-27T12:00:00Z", ""])
    | st.text(max_size=20),
    "array": st.lists(json_scalars, max_size=3),
    "object": st.dictionaries(st.text(max_size=8), json_scalars, max_size=3),
}


def wrong_values(current: Any) -> st.SearchStrategy[Any]:
    """A value of any JSON type but the one the field holds in the sample."""
    return st.one_of(*(values for kind, values in VALUES_OF_KIND.items() if kind != json_kind(current)))


TIME_FIELDS = ("ts", "at", "active_since", "probability_at")
"""Timestamps travel as ISO strings: a number there is the wrong type, a huge one doubly so."""

NON_FINITE = (math.nan, math.inf, -math.inf, -math.nan)
HUGE_NUMBERS = (
    2**53,
    2**53 + 1,
    2**63,
    -(2**63) - 1,
    2**64,
    10**20,
    -(10**20),
    10**308,
    10**309,
    10**4000,  # Python's json refuses integers over 4,300 digits, so this is as large as JSON gets
    -(10**4000),
    1.7976931348623157e308,
    -1.7976931348623157e308,
    5e-324,
    -0.0,
    1e300,
    float(2**63),
)
huge_numbers = st.sampled_from(HUGE_NUMBERS) | st.integers(min_value=2**53, max_value=10**400).map(
    lambda n: n if n % 2 else -n
)

LONE_SURROGATES = st.sampled_from(["\udc80", "\udcff", "\udcc3", "\ud800", "\udbff", "\udfff"]) | st.integers(
    0xD800, 0xDFFF
).map(chr)
INVALID_UTF8 = (b"\xff", b"\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x80", b"\xc3")


def nested(depth: int, leaf: Any, *, dicts: bool) -> Any:
    """``leaf`` wrapped in ``depth`` lists or dicts, built without recursion."""
    value = leaf
    for _ in range(depth):
        value = {"a": value} if dicts else [value]
    return value


@st.composite
def deep_values(draw: st.DrawFn) -> Any:
    depth = draw(st.integers(100, DEEPEST))
    return nested(depth, draw(json_scalars), dicts=draw(st.booleans()))


@st.composite
def oversize_strings(draw: st.DrawFn) -> str:
    """A string of 64 KB to 256 KB (in UTF-8), a repeated short pattern so drawing it stays cheap."""
    chunk = draw(st.text(min_size=1, max_size=6))
    size = draw(st.integers(IOT_MAX_MESSAGE_BYTES // 2, 2 * IOT_MAX_MESSAGE_BYTES))
    chars = size * len(chunk) // len(chunk.encode())
    return (chunk * (chars // len(chunk) + 1))[:chars]


# --- payloads -------------------------------------------------------------------------------------


class Target:
    """One parser's or handler's payloads: its sample events from events/ as seeds, spoilt category by category.

    ``fresh`` gives each seed copy a new identity first (reading time, action or event id): a copy
    of the sample would otherwise be a redelivery, answered from the deduplication record without
    reaching the code behind it. ``exempt`` maps a category to fields it must leave alone: each
    entry is an open bug, pinned by a strict xfail test, to be removed with the fix. :meth:`focused`
    is the opposite: only that category, only those fields (what the xfail test sends).
    """

    def __init__(
        self,
        samples: tuple[str, ...],
        *,
        topic_field: str | None,
        valid: Callable[[st.DrawFn, dict[str, Any]], dict[str, Any]],
        fresh: Callable[[st.DrawFn, dict[str, Any]], dict[str, Any]],
        exempt: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self.samples = samples
        self.seeds = [load_event(sample) for sample in samples]
        self.topic_field = topic_field
        self.valid = valid
        self.fresh = fresh
        self.exempt = dict(exempt or {})
        self.only: tuple[str, frozenset[str]] | None = None

    def focused(self, category: str, fields: frozenset[str]) -> Target:
        """The same target, sending only ``category`` and spoiling only ``fields``."""
        target = Target(self.samples, topic_field=self.topic_field, valid=self.valid, fresh=self.fresh)
        target.only = (category, fields)
        return target

    def allowed(self, category: str, name: str) -> bool:
        if self.only is not None:
            return name in self.only[1]
        return name not in self.exempt.get(category, frozenset())

    def fields(self, event: dict[str, Any], category: str, want: Callable[[Any], bool] = lambda _: True) -> list[str]:
        return sorted(name for name, value in event.items() if self.allowed(category, name) and want(value))

    def new_fields(self, *names: str) -> list[str]:
        """Field names no seed has, unless the target is focused on given fields."""
        return [] if self.only is not None else list(names)

    def categories(self) -> list[str]:
        """The categories this target can be sent: a topic mismatch needs a topic field."""
        if self.only is not None:
            return [self.only[0]]
        return [c for c in CATEGORIES if c != "topic_mismatch" or self.topic_field]

    def payloads(self) -> st.SearchStrategy[tuple[str, Any]]:
        """(category, payload) over every category of this target."""
        return st.one_of(*(st.tuples(st.just(category), self.build(category)) for category in self.categories()))

    def build(self, category: str) -> st.SearchStrategy[Any]:
        @st.composite
        def draw_payload(draw: st.DrawFn) -> Any:
            seeds = [seed for seed in self.seeds if self.fields(seed, category)] if self.only else self.seeds
            event = self.fresh(draw, dict(draw(st.sampled_from(seeds))))
            return getattr(self, f"_{category}")(draw, event)

        return draw_payload()

    # One method per category: each takes a copy of a seed event and spoils it its own way.

    def _wrong_type(self, draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
        names = self.fields(event, "wrong_type")
        for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True)):
            event[name] = draw(wrong_values(event[name]))
        return event

    def _missing_field(self, draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
        names = self.fields(event, "missing_field")
        for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True)):
            del event[name]
        return event

    def _numbers(
        self, draw: st.DrawFn, event: dict[str, Any], category: str, values: st.SearchStrategy[Any]
    ) -> dict[str, Any]:
        """Numbers, and timestamps (ISO strings in the seeds), replaced; inside nested dicts of numbers too."""
        places: list[tuple[str, str | None]] = [
            (name, None)
            for name in self.fields(event, category, lambda v: json_kind(v) == "number")
            + [name for name in TIME_FIELDS if isinstance(event.get(name), str) and self.allowed(category, name)]
        ]
        for outer in ("readings", "rule"):
            if isinstance(event.get(outer), dict) and self.allowed(category, outer):
                places += [(outer, key) for key, v in event[outer].items() if json_kind(v) == "number"]
        if isinstance(event.get("drivers"), list) and self.allowed(category, "drivers"):
            places += [("drivers", str(index)) for index in range(len(event["drivers"]))]
        for outer, inner in draw(st.lists(st.sampled_from(places), min_size=1, max_size=3, unique=True)):
            if inner is None:
                event[outer] = draw(values)
            elif outer == "drivers":  # a list of {"feature", "contribution"}: spoil one contribution
                drivers = list(event[outer])
                drivers[int(inner)] = {**drivers[int(inner)], "contribution": draw(values)}
                event[outer] = drivers
            else:
                event[outer] = {**event[outer], inner: draw(values)}
        return event

    def _nan_infinity(self, draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
        return self._numbers(draw, event, "nan_infinity", st.sampled_from(NON_FINITE))

    def _huge_number(self, draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
        return self._numbers(draw, event, "huge_number", huge_numbers)

    def _oversize(self, draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
        strings = self.fields(event, "oversize", lambda v: isinstance(v, str))
        how = draw(
            st.sampled_from(
                ["string_field"] * bool(strings) + ["long_list", *self.new_fields("extra_field", "many_fields")]
            )
        )
        if how == "string_field":
            event[draw(st.sampled_from(strings))] = draw(oversize_strings())
        elif how == "extra_field":
            event[draw(st.text(min_size=1, max_size=10))] = draw(oversize_strings())
        elif how == "many_fields":
            # ~12 bytes a field: 5,000 to 22,000 fields span 64 KB to 256 KB.
            event.update({f"field_{i}": i for i in range(draw(st.integers(5_000, 22_000)))})
        else:
            # A waveform where one number belongs: 10,000 to 50,000 samples.
            name = draw(st.sampled_from(self.fields(event, "oversize") + self.new_fields("samples")))
            event[name] = [draw(st.floats(0, 1000))] * draw(st.integers(10_000, 50_000))
        return event

    def _deep_nesting(self, draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
        event[draw(st.sampled_from(self.fields(event, "deep_nesting") + self.new_fields("extra")))] = draw(
            deep_values()
        )
        return event

    def _non_utf8(self, draw: st.DrawFn, event: dict[str, Any]) -> Any:
        strings = self.fields(event, "non_utf8", lambda v: isinstance(v, str))
        how = draw(
            st.sampled_from(
                ["surrogate_value"] * bool(strings) + self.new_fields("json_text", "surrogate_key", "raw_bytes")
            )
        )
        if how == "surrogate_key":
            event["extra" + draw(LONE_SURROGATES)] = 1
            return event
        if how == "raw_bytes":
            text = json.dumps(event).encode()
            at = draw(st.sampled_from([i + 1 for i, byte in enumerate(text) if byte == ord('"')]))
            return text[:at] + draw(st.sampled_from(INVALID_UTF8)) + text[at:]
        name = draw(st.sampled_from(strings))
        index = draw(st.integers(0, len(event[name])))
        event[name] = event[name][:index] + draw(LONE_SURROGATES) + event[name][index:]
        # As JSON text, the surrogate is the escape sequence a device put in its payload.
        return json.dumps(event) if how == "json_text" else event

    def _with_motor_id(self, event: dict[str, Any], motor_id: Any, topic_motor_id: Any) -> dict[str, Any]:
        event["motor_id"] = motor_id
        if self.topic_field:
            event[self.topic_field] = topic_motor_id
        return event

    def _lookalike_id(self, draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
        victim = draw(st.sampled_from(VICTIMS))
        fake = draw(lookalike_ids(victim))
        # Either the topic was named with the look-alike too, or it carries the real id.
        return self._with_motor_id(event, fake, draw(st.sampled_from((fake, victim))))

    def _injection_id(self, draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
        victim = draw(st.sampled_from(VICTIMS))
        forged = draw(injection_ids(victim))
        return self._with_motor_id(event, forged, draw(st.sampled_from((forged, victim))))

    def _topic_mismatch(self, draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
        """A device publishing on its own topic in another motor's name, or the reverse."""
        claimed, topic = draw(st.lists(st.sampled_from(VICTIMS), min_size=2, max_size=2, unique=True))
        if draw(st.booleans()):
            topic = draw(st.one_of(lookalike_ids(claimed), injection_ids(claimed), st.sampled_from(("", "-"))))
        return self._with_motor_id(event, claimed, topic)

    def _not_an_object(self, draw: st.DrawFn, event: dict[str, Any]) -> Any:
        return draw(
            st.one_of(
                json_scalars,
                st.lists(json_values, max_size=4),
                st.just([event]),
                st.just(json.dumps([event])),
                st.sampled_from(("", "null", "{", "not json", "[]", '"motor-001"', "{}")),
                st.binary(max_size=20),
            )
        )

    def _valid(self, draw: st.DrawFn, event: dict[str, Any]) -> Any:
        event = self.valid(draw, event)
        # A local harness may hand the same payload over as JSON text, for Powertools' parser to decode.
        return json.dumps(event) if draw(st.integers(0, 9)) == 0 else event


ALWAYS_REFUSED = SECURITY_CATEGORIES | {"oversize", "deep_nesting", "non_utf8", "not_an_object"}
"""Categories no payload of which is well-formed (where a target accepts one, that is an open bug)."""

T0_MS = 1_795_780_800_000  # 2026-11-27T12:00:00Z, the sample events' morning


def fresh_reading(draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
    """Another time (up to 30 days before the samples' morning) and sequence number."""
    at_ms = T0_MS + draw(st.integers(-30 * 86_400, 6 * 3600)) * 1000
    return event | {"ts": at_ms if isinstance(event["ts"], int) else to_iso(at_ms), "seq": draw(st.integers(0, 10**6))}


# Identities come from a counter: Hypothesis draws simple values (zeros, the last example's) on
# purpose, so drawn ids repeat and the payload would be answered as a redelivery. Fixed width, so
# that no later draw (a position in the string, say) depends on which number it got.
_serial = itertools.count(1)


def fresh_action(draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
    return event | {"action_id": f"fresh-{next(_serial):012d}"}


def fresh_alarm(draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
    return event | {"event_id": f"{2**64 + next(_serial):032x}"}


def to_iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def valid_reading(draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
    """A seed reading for a motor of VALID_MOTORS or NEW_MOTORS, taken between 12:00Z and 18:00Z.

    Later than the motor's newest reading it is applied, earlier it is stale: both are answers.
    """
    motor = draw(st.sampled_from(VALID_MOTORS + NEW_MOTORS))
    at_ms = T0_MS + draw(st.integers(0, 6 * 3600)) * 1000
    return event | {"motor_id": motor, "topic_motor_id": motor, "ts": at_ms, "seq": draw(st.integers(0, 10**6))}


def valid_action(draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
    """A seed action for a motor of VALID_MOTORS; one in ten reuses one of 8 action ids (a redelivery)."""
    motor = draw(st.sampled_from(VALID_MOTORS))
    redelivered = draw(st.integers(0, 9)) == 0
    return fresh_action(draw, event) | {
        "motor_id": motor,
        "topic_motor_id": motor,
        **({"action_id": f"fuzz-{draw(st.integers(0, 7))}"} if redelivered else {}),
        "ts": T0_MS + 1_800_000 + draw(st.integers(0, 3600)) * 1000,
    }


def valid_alarm(draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
    """The seed alarm event for a motor of VALID_MOTORS; one in ten reuses one of 8 event ids (a redelivery)."""
    redelivered = draw(st.integers(0, 9)) == 0
    return fresh_alarm(draw, event) | {
        "motor_id": draw(st.sampled_from(VALID_MOTORS)),
        "sequence": draw(st.integers(0, 1000)),
        **({"event_id": f"{draw(st.integers(1, 8)):032x}"} if redelivered else {}),
    }


TELEMETRY_SAMPLES = ("telemetry-normal", "telemetry-legacy", "telemetry-condition-breach")
ACTION_SAMPLES = (
    "action-acknowledge",
    "action-snooze",
    "action-service-complete",
    "action-disable",
    "action-reset",
    "action-report-failure",
    "action-acknowledge-verdict",
)
ALARM_SAMPLES = ("alarm-raised", "alarm-predictive-raised", "alarm-failure-reported")


def campaign_size(examples: int) -> int:
    """Payloads a campaign planned for ``examples`` sends: FUZZ_SCALE multiplies them."""
    return round(examples * float(os.environ.get("FUZZ_SCALE", "1")))


def campaign(examples: int, *, shrink: bool = True) -> Callable[[Any], Any]:
    """Hypothesis settings of a campaign: the same payloads every run, unless FUZZ_SEED asks for others.

    A CI run is reproducible that way (a red build replays on a laptop, and the runtime is stable);
    ``FUZZ_SEED=random`` or ``FUZZ_SEED=<n>`` explores, ``FUZZ_SCALE=<k>`` sends k times as many.
    Without ``shrink``, a failure is reported as found (an xfail needs one, not the smallest).
    """
    chosen = os.environ.get("FUZZ_SEED")
    configured = settings(
        max_examples=campaign_size(examples),
        deadline=None,
        derandomize=chosen is None,
        phases=list(Phase) if shrink else [Phase.explicit, Phase.generate],
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,  # moto and the fleet are set up once per campaign
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )

    def apply(test: Any) -> Any:
        test = configured(test)
        return seed(int(chosen))(test) if chosen and chosen != "random" else test

    return apply


def tally(config: pytest.Config) -> Tally:
    """The run's tally, registered as a plugin on first use."""
    return registered(config, Tally.name, Tally)
