"""MQTT topic names and filters (MQTT 5.0 section 4.7, the same in 3.1.1): validity and matching."""

from __future__ import annotations

from collections.abc import Sequence


def valid_topic_name(topic: str) -> bool:
    return bool(topic) and "+" not in topic and "#" not in topic


def valid_topic_filter(topic_filter: str) -> bool:
    if not topic_filter:
        return False
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def topic_matches(filter_levels: Sequence[str], topic_levels: Sequence[str]) -> bool:
    """Whether a filter (split on '/') matches a topic name (split on '/').

    '#' also matches the parent level ('a/#' matches 'a'); a wildcard in the first level does not
    match a topic starting with '$' (section 4.7.2), which is reserved for the server's own topics.
    """
    if topic_levels[0].startswith("$") and filter_levels[0] in ("+", "#"):
        return False
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels) or (level != "+" and level != topic_levels[index]):
            return False
    return len(filter_levels) == len(topic_levels)
