"""A reader for Universal Binary JSON (UBJSON, ubjson.org, draft 12) as XGBoost writes its models.

XGBoost's `save_model` writes UBJSON when the file name has no `.json` extension (`xgboost-model`):
objects, strings, integers, float32 arrays written as typed, counted containers (`[$d#L<count>`), and
that is all. The whole draft is read here except the high-precision number (`H`), which XGBoost never
writes; anything malformed is a ValueError naming the offset, never a partial value.
"""

from __future__ import annotations

import struct
from typing import Any

_SCALARS: dict[bytes, struct.Struct] = {
    marker: struct.Struct(">" + code)
    for marker, code in ((b"i", "b"), (b"U", "B"), (b"I", "h"), (b"l", "i"), (b"L", "q"), (b"d", "f"), (b"D", "d"))
}
_INTEGERS = frozenset((b"i", b"U", b"I", b"l", b"L"))
_CONSTANTS: dict[bytes, Any] = {b"T": True, b"F": False, b"Z": None}


def loads(data: bytes) -> Any:
    """The value `data` holds; ValueError if it is not exactly one well-formed UBJSON value."""
    reader = _Reader(data)
    value = reader.value()
    if reader.pos != len(data):
        raise ValueError(f"UBJSON: {len(data) - reader.pos} bytes follow the value at offset {reader.pos}")
    return value


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def marker(self) -> bytes:
        while True:
            marker = self.data[self.pos : self.pos + 1]
            if not marker:
                raise ValueError(f"UBJSON: the data ends at offset {self.pos}, inside a value")
            self.pos += 1
            if marker != b"N":  # no-op, allowed anywhere a value may start
                return marker

    def value(self, marker: bytes | None = None) -> Any:
        marker = marker or self.marker()
        scalar = _SCALARS.get(marker)
        if scalar is not None:
            return self.scalar(scalar)
        if marker in _CONSTANTS:
            return _CONSTANTS[marker]
        if marker == b"S":
            return self.text()
        if marker == b"C":
            return self.take(1).decode("ascii")
        if marker == b"[":
            return self.array()
        if marker == b"{":
            return self.object()
        raise ValueError(f"UBJSON: unknown or unsupported marker {marker!r} at offset {self.pos - 1}")

    def scalar(self, scalar: struct.Struct) -> Any:
        if self.pos + scalar.size > len(self.data):
            raise ValueError(f"UBJSON: the data ends at offset {len(self.data)}, inside a number")
        (value,) = scalar.unpack_from(self.data, self.pos)
        self.pos += scalar.size
        return value

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if count < 0 or end > len(self.data):
            raise ValueError(f"UBJSON: {count} bytes asked for at offset {self.pos}, past the end of the data")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def length(self) -> int:
        marker = self.marker()
        if marker not in _INTEGERS:
            raise ValueError(f"UBJSON: a length must be an integer, not {marker!r} (offset {self.pos - 1})")
        count = int(self.scalar(_SCALARS[marker]))
        if count < 0:
            raise ValueError(f"UBJSON: negative length {count} before offset {self.pos}")
        return count

    def text(self) -> str:
        return self.take(self.length()).decode("utf-8")

    def header(self) -> tuple[bytes | None, int | None]:
        """A container's optional `$type` and `#count`."""
        kind = None
        if self.data[self.pos : self.pos + 1] == b"$":
            self.pos += 1
            kind = self.marker()
        if self.data[self.pos : self.pos + 1] == b"#":
            self.pos += 1
            return kind, self.length()
        if kind is not None:
            raise ValueError(f"UBJSON: a typed container without a count (offset {self.pos})")
        return None, None

    def array(self) -> list[Any]:
        kind, count = self.header()
        if count is None:
            items = []
            while self.data[self.pos : self.pos + 1] != b"]":
                items.append(self.value())
            self.pos += 1
            return items
        scalar = _SCALARS.get(kind) if kind else None
        if scalar is not None:  # XGBoost's float32 and integer arrays: one unpack for the lot
            chunk = self.take(count * scalar.size)
            return list(struct.unpack(f">{count}{scalar.format[-1]}", chunk))
        return [self.value(kind) for _ in range(count)]

    def object(self) -> dict[str, Any]:
        kind, count = self.header()
        result: dict[str, Any] = {}
        if count is None:
            while self.data[self.pos : self.pos + 1] != b"}":
                key = self.text()
                result[key] = self.value()
            self.pos += 1
            return result
        for _ in range(count):
            key = self.text()
            result[key] = self.value(kind)
        return result
