"""The gateway's limits from POTLUCK_GATEWAY__*: a value nginx would refuse fails at once, naming its variable."""

from __future__ import annotations

import pytest

from potluck_ops.failures import OpsError
from potluck_ops.nginx import MAX_CONNECTIONS, GatewayLimits


def test_limits_come_from_the_environment() -> None:
    limits = GatewayLimits.from_env(
        {"POTLUCK_GATEWAY__ADDRESS_CONNECTIONS": str(MAX_CONNECTIONS), "POTLUCK_GATEWAY__TOKEN_BURST": "1"}
    )
    assert (limits.address_connections, limits.token_burst) == (MAX_CONNECTIONS, 1)
    assert limits.address_rate == GatewayLimits().address_rate
    assert limits.api_connections == 0  # admission at the gateway is off unless asked for
    assert GatewayLimits.from_env({"POTLUCK_GATEWAY__API_CONNECTIONS": "8"}).api_connections == 8


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("POTLUCK_GATEWAY__ADDRESS_CONNECTIONS", "65536", "less than or equal to 65535"),
        ("POTLUCK_GATEWAY__ADDRESS_CONNECTIONS", "0", "greater than or equal to 1"),
        ("POTLUCK_GATEWAY__ADDRESS_BURST", "0", "greater than or equal to 1"),
        ("POTLUCK_GATEWAY__TOKEN_RATE", "0", "greater than or equal to 1"),
        ("POTLUCK_GATEWAY__ADDRESS_RATE", "fast", "valid integer"),
        ("POTLUCK_GATEWAY__API_CONNECTIONS", "-1", "greater than or equal to 0"),
        ("POTLUCK_GATEWAY__API_CONNECTIONS", "65536", "less than or equal to 65535"),
    ],
)
def test_a_value_nginx_would_refuse_names_its_variable(variable: str, value: str, says: str) -> None:
    with pytest.raises(OpsError) as raised:
        GatewayLimits.from_env({variable: value, "POTLUCK_GATEWAY__TOKEN_BURST": "5"})
    message = str(raised.value)
    assert f"{variable}='{value}'" in message
    assert says in message
    assert "TOKEN_BURST" not in message  # only the bad one is named
