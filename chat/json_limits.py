"""Bounded JSON for every door: REST bodies (the DRF parser below) and socket frames alike.

Python's ``json`` recurses once per nesting level, so a 2 KB body of 1,100 ``[`` used to raise
``RecursionError`` (a 500 on REST, a 1011 close on the socket). No message of this API nests
deeper than a few levels; :data:`MAX_JSON_DEPTH` leaves ample room and refuses the rest with a
clear ``json_too_deep`` before any parser recursion can go wrong.
"""

from __future__ import annotations

import io
import json
import re
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 32

# A JSON string literal (brackets inside it do not nest) or one bracket.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


class JsonTooDeep(ValueError):
    """The document nests arrays/objects deeper than :data:`MAX_JSON_DEPTH`."""


def json_depth(text: str) -> int:
    """How deep arrays and objects nest in ``text`` (0 for a scalar); brackets in strings do not count."""
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def loads_bounded(text: str) -> Any:
    """``json.loads`` that raises :class:`JsonTooDeep` instead of recursing past the limit."""
    if json_depth(text) > MAX_JSON_DEPTH:
        raise JsonTooDeep(f"nests deeper than {MAX_JSON_DEPTH} levels")
    return json.loads(text)


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser with the depth bound: ``400 {"code": "json_too_deep", ...}``."""

    def parse(self, stream: IO[Any], media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read()
        if json_depth(raw.decode(encoding, errors="replace")) > MAX_JSON_DEPTH:
            raise ParseError(
                f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.", code="json_too_deep"
            )
        # DRF's own parsing (strict: no NaN) and its messages for everything else.
        return super().parse(io.BytesIO(raw), media_type, parser_context)
