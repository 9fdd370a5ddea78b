"""Password rules (ASVS 2.1): at least 12 characters, not guessable, not the account's own name or email.

"Guessable" is zxcvbn's estimate below 10^8 guesses (score < 3): its matchers hold 30,000 common passwords and
words, keyboard walks, repeats, sequences, dates and l33t substitutions, and the account's own username and email
count as dictionary words, so `password1234`, `qwertyuiop12` and `bobbobbobbob` fail while a four-word phrase
passes. No composition rules (ASVS 2.1.9). Pure: unit-tested in tests/unit/test_passwords.py.
"""

from __future__ import annotations

from zxcvbn import zxcvbn  # type: ignore[import-untyped]

MIN_LENGTH = 12
MAX_LENGTH = 256
MIN_SCORE = 3
# zxcvbn's cost grows with the length; a long password's first characters decide its guessability anyway.
_CHECKED_PREFIX = 72  # zxcvbn refuses longer input


def password_problem(password: str, *, user_inputs: tuple[str, ...] = ()) -> str | None:
    """Why this password is refused, or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"the password must have at least {MIN_LENGTH} characters"
    lowered = password.strip().lower()
    for value in user_inputs:
        value = value.strip().lower()
        if value and (lowered == value or lowered == value.split("@", 1)[0]):
            return "the password must not be the username or email"
    inputs = [v for value in user_inputs for v in (value, value.split("@", 1)[0]) if v]
    if zxcvbn(password[:_CHECKED_PREFIX], user_inputs=inputs)["score"] < MIN_SCORE:
        return "the password is too common or too easy to guess"
    return None
