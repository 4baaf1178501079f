"""Input fields of the REST API whose schema says exactly what they accept.

DRF's ``CharField`` turns a number into a string (``{"username": 0}`` registered the user "0"),
and its ``allow_null`` makes the schema say "nullable" for a field whose rules then refuse null.
These fields take strings only, or pass anything on to ``chat.text_rules`` while the schema
documents what those rules accept; the schema fuzz test (tests/chat/test_schema_fuzz.py) holds
the two together.
"""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from chat.models import Companion
from chat.text_rules import CLIENT_ID_MAX_LENGTH


class StringField(serializers.CharField):
    """A ``CharField`` that refuses numbers and booleans instead of turning them into text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StringRegexField(StringField, serializers.RegexField):
    """A ``RegexField`` that takes strings only."""


class StringEmailField(StringField, serializers.EmailField):
    """An ``EmailField`` that takes strings only."""


class UncheckedTextField(serializers.Field[str, str, str, Any]):
    """Passes any JSON value through, null included: ``chat.text_rules`` alone judges text (and says why).

    The schema documents what the rules accept (the subclasses below), so null is not "nullable".
    """

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        # DRF would refuse null with its own message before the rules could say text_not_string.
        if data is None:
            return (False, None)
        return super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> Any:
        return data

    def to_representation(self, value: str) -> str:
        return value


@extend_schema_field({"type": "string", "minLength": 1})
class MessageTextField(UncheckedTextField):
    """A message's text; its length limit counts the text after trimming, so the schema leaves it out."""


@extend_schema_field(
    {"type": "string", "minLength": 1, "maxLength": CLIENT_ID_MAX_LENGTH, "pattern": "^[ -~]+$"}
)
class ClientIdField(UncheckedTextField):
    """A send's client_id: printable ASCII (space to tilde), as ``validate_client_id`` checks."""


@extend_schema_field({"type": "string", "pattern": "^[-a-zA-Z0-9_]+$", "maxLength": 64})
class CompanionSlugField(serializers.SlugRelatedField[Companion]):
    """A companion by slug; anything that is no slug (a NUL byte, a path) is refused before the query."""

    _SLUG = re.compile(r"[-a-zA-Z0-9_]{1,64}")
    default_error_messages = {
        "required": "Give the slug of a companion (GET /api/v1/companions/).",
        "null": "Give the slug of a companion (GET /api/v1/companions/).",
        "does_not_exist": "No companion has this slug.",
        "invalid": "No companion has this slug.",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="slug", queryset=Companion.objects.all(), **kwargs)

    def to_internal_value(self, data: Any) -> Companion:
        # PostgreSQL refuses a NUL byte in a query parameter (DataError): check the form first.
        if not isinstance(data, str) or self._SLUG.fullmatch(data) is None:
            self.fail("does_not_exist")
        return super().to_internal_value(data)
