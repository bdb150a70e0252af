"""One number parser for everything a user types."""

from __future__ import annotations

import pytest

from preflight.numbers import NumberError, maybe_int, parse_float, parse_int, parse_port


@pytest.mark.parametrize("raw", ["\u00b2", "\u0662\u0669", "abc", "", " ", "0x10", "1e3", "1.0",
                                 "inf", "nan", "--1", True])
def test_not_whole_numbers(raw):
    with pytest.raises(NumberError) as err:
        parse_int(raw, "MASTER_PORT")
    assert str(err.value).startswith("MASTER_PORT=") and "\n" not in str(err.value)
    assert maybe_int(raw) is None


@pytest.mark.parametrize("raw", ["0", "65536", "295000", "1" + "0" * 400, -1])
def test_ports_out_of_range(raw):
    with pytest.raises(NumberError, match="MASTER_PORT"):
        parse_port(raw, "MASTER_PORT")


@pytest.mark.parametrize("raw", [float("inf"), float("nan"), "inf", "-inf", "nan", "1e400",
                                 10**400, "\u00b2"])
def test_not_finite(raw):
    with pytest.raises(NumberError, match="hf_timeout_s"):
        parse_float(raw, "hf_timeout_s")


def test_valid():
    assert parse_port(" 29500 ", "MASTER_PORT") == 29500
    assert parse_int("-1", "x", -1, 5) == -1
    assert parse_float("2.5e-3", "x") == 0.0025
    assert parse_float(3, "x") == 3.0
