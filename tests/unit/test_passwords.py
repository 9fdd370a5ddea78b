"""Password rules (issue 18, finding 14): length, guessability, not the account's own name."""

from __future__ import annotations

import pytest

from potluck.seed import DEMO_PASSWORD
from potluck.user.passwords import password_problem


@pytest.mark.parametrize(
    "password",
    ["password", "12345678", "short pw", "password1234", "123456789012", "qwertyuiop12", "aaaaaaaaaaaa"],
)
def test_short_or_common_passwords_are_refused(password: str) -> None:
    assert password_problem(password) is not None


@pytest.mark.parametrize("password", ["bob_the_cook", "BOB_THE_COOK", "bob_the_cook@example.com"])
def test_the_username_or_email_is_refused(password: str) -> None:
    problem = password_problem(password, user_inputs=("bob_the_cook", "bob_the_cook@example.com"))
    assert problem == "the password must not be the username or email"


@pytest.mark.parametrize("password", ["correct horse battery", "long enough pw", DEMO_PASSWORD, "x7#Lq9!mZ2$w"])
def test_reasonable_passwords_pass(password: str) -> None:
    assert password_problem(password, user_inputs=("ann", "ann@example.com")) is None


def test_a_very_long_password_is_checked_by_its_first_characters() -> None:
    assert password_problem("correct horse battery " * 11) is None
