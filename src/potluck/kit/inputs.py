"""The types for what clients send: bodies, query parameters, form fields.

`SafeStr` refuses NUL and the other C0 control characters (and DEL) except tab, line feed and carriage return.
NUL cannot be stored by PostgreSQL (a text value with U+0000 fails in the driver, once a 500), SQLite stores it
and hands it back to every reader; the other controls have no business in a recipe or a name and are a classic
log- and terminal-injection vector. The refusal is a pydantic error, so it becomes the usual 422 problem+json
whose `errors[].loc` names the field; the OpenAPI schema says the same with a `pattern`.

`StrictInt`, `StrictFloat` and `StrictBool` are what writes use: a JSON `true` is not 1, `"false"` is not false,
`false` is not 0.0, `"4"` is not 4. A number keeps JSON Schema's meaning: 2.0 is the integer 2 (JSON does not
tell them apart), 2.5 is not an integer, and a JSON integer is a valid float.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, GetCoreSchemaHandler, GetJsonSchemaHandler, Strict
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

# C0 controls except \t \n \r, and DEL.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# The same rule as a JSON Schema (ECMA-262) pattern, for the OpenAPI document.
SAFE_TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
# For a field that is stripped and must not end up empty: at least one character that is not a blank.
_CONTROL_CLASS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
NOT_BLANK_PATTERN = rf"^[^\S{_CONTROL_CLASS}]*[^\s{_CONTROL_CLASS}][^{_CONTROL_CLASS}]*$"


def reject_control_characters(value: object) -> object:
    """The value unchanged, or a validation error naming the first forbidden character.

    Runs on the raw input, before any stripping: what the client sent is what the pattern describes."""
    if not isinstance(value, str):
        return value  # the str schema itself refuses it
    found = _FORBIDDEN.search(value)
    if found is not None:
        raise PydanticCustomError(
            "control_character",
            "control character U+{code} is not allowed (only tab and line breaks are)",
            {"code": f"{ord(found.group()):04X}"},
        )
    return value


class _NoControlCharacters:
    """Validation and JSON Schema in one annotation; a pattern set by an outer StringConstraints wins."""

    def __init__(self, pattern: str = SAFE_TEXT_PATTERN) -> None:
        self.pattern = pattern

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(reject_control_characters, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.setdefault("pattern", self.pattern)
        return json_schema


# Last in an Annotated (after StringConstraints, which must reach the str schema itself), so the check sees the raw
# input and the pattern of a StringConstraints stays in the JSON Schema:
# `Annotated[str, StringConstraints(max_length=50), NO_CONTROLS]`.
NO_CONTROLS = _NoControlCharacters()
# The same check, documented for a stripped field with min_length=1 (whitespace alone would be refused).
NO_CONTROLS_NOT_BLANK = _NoControlCharacters(NOT_BLANK_PATTERN)
SafeStr = Annotated[str, NO_CONTROLS]


def _not_bool_or_text(value: object) -> object:
    if isinstance(value, bool | str | bytes):
        raise PydanticCustomError(
            "strict_number", "a JSON number is required, not {kind}", {"kind": type(value).__name__}
        )
    return value


# Last in an Annotated, after Field(ge=..., le=...), for the same reason as NO_CONTROLS.
NUMBER_ONLY = BeforeValidator(_not_bool_or_text)
StrictInt = Annotated[int, NUMBER_ONLY]
StrictFloat = Annotated[float, NUMBER_ONLY]
StrictBool = Annotated[bool, Strict()]
