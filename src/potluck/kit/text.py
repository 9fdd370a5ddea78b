"""The one string type for what clients send: bodies, query parameters, form fields.

`SafeStr` refuses NUL and the other C0 control characters (and DEL) except tab, line feed and carriage return.
NUL cannot be stored by PostgreSQL (a text value with U+0000 fails in the driver, once a 500), SQLite stores it
and hands it back to every reader; the other controls have no business in a recipe or a name and are a classic
log- and terminal-injection vector. The refusal is a pydantic error, so it becomes the usual 422 problem+json
whose `errors[].loc` names the field.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

# C0 controls except \t \n \r, and DEL.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def reject_control_characters(value: str) -> str:
    """The value unchanged, or a validation error naming the first forbidden character."""
    found = _FORBIDDEN.search(value)
    if found is not None:
        raise PydanticCustomError(
            "control_character",
            "control character U+{code} is not allowed (only tab and line breaks are)",
            {"code": f"{ord(found.group()):04X}"},
        )
    return value


SafeStr = Annotated[str, AfterValidator(reject_control_characters)]
