"""The one place where the limits of a message's text (and of a send's ``client_id``) are checked.

REST, the WebSocket consumer and the services all call :func:`validate_message_text`, so a
violation reads the same everywhere: a ``MessageTextInvalid`` whose ``code`` becomes the
``error`` event's code or the 400 response's code, and nothing is stored.
"""

from __future__ import annotations

import re
import unicodedata

from django.conf import settings

# Newlines and tabs are part of ordinary chat text; every other C0/C1 control character (Unicode
# category Cc, a fixed set: U+0000..U+001F and U+007F..U+009F) is not, nor a lone surrogate (Cs).
# One regex search instead of a category lookup per character: every message passes here.
_REFUSED_CHARACTER = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
CLIENT_ID_MAX_LENGTH = 64


class ChatInputInvalid(ValueError):
    """Input a person sent that chat refuses; ``code`` is stable, ``detail`` is for humans."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class MessageTextInvalid(ChatInputInvalid):
    """The text of a message is empty, too long or contains control characters."""


class ClientIdInvalid(ChatInputInvalid):
    """A send's ``client_id`` is missing, too long or not printable ASCII."""


def validate_message_text(text: str) -> str:
    """Return the normalized text (NFC, ``\\r\\n`` -> ``\\n``, outer whitespace stripped) or raise.

    Codes: ``text_not_string``, ``text_empty``, ``text_too_long``, ``text_control_character``.
    The length limit (``settings.CHAT_MESSAGE_MAX_LENGTH``) counts characters of the normalized text.
    """
    if not isinstance(text, str):
        raise MessageTextInvalid("text_not_string", "The message text must be a string.")
    # Browsers send \r\n from a textarea; storing one form keeps the idempotency/equality simple.
    normalized = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n")).strip()
    if not normalized:
        raise MessageTextInvalid("text_empty", "The message is empty.")
    max_length: int = settings.CHAT_MESSAGE_MAX_LENGTH
    if len(normalized) > max_length:
        raise MessageTextInvalid(
            "text_too_long", f"The message has {len(normalized)} characters; the limit is {max_length}."
        )
    if refused := _REFUSED_CHARACTER.search(normalized):
        raise MessageTextInvalid(
            "text_control_character",
            f"The message contains the control character U+{ord(refused.group()):04X} "
            f"at position {refused.start()}; only newlines and tabs are allowed.",
        )
    return normalized


def validate_client_id(client_id: str) -> str:
    """Return ``client_id`` if it is 1..64 printable ASCII characters, else raise ``ClientIdInvalid``."""
    if not isinstance(client_id, str) or not client_id:
        raise ClientIdInvalid("client_id_missing", "Every send needs a non-empty client_id string.")
    if len(client_id) > CLIENT_ID_MAX_LENGTH:
        raise ClientIdInvalid(
            "client_id_too_long", f"The client_id has {len(client_id)} characters; the limit is 64."
        )
    if not (client_id.isascii() and client_id.isprintable()):
        raise ClientIdInvalid("client_id_invalid", "The client_id must be printable ASCII.")
    return client_id
