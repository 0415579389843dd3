"""corral-core's callback flags: the defaults are Standard Webhooks' schedule; values read as operators write them."""

from __future__ import annotations

import argparse
import ipaddress

import pytest

from gateway_core.callbacks.settings import DEFAULT_SCHEDULE_S, CallbackSettings


def parsed(*argv: str) -> CallbackSettings:
    parser = argparse.ArgumentParser()
    CallbackSettings.add_arguments(parser)
    return CallbackSettings.from_args(parser.parse_args(argv))


def test_the_defaults_are_the_spec_schedule_a_15_s_timeout_and_no_private_range():
    settings = parsed()

    assert settings.schedule_s == (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400) == DEFAULT_SCHEDULE_S
    assert settings.timeout_s == 15
    assert settings.allow == ()
    assert settings.secret_rotation_window_s == 86400


def test_the_flags_read_ranges_and_durations():
    settings = parsed(
        "--callback-allow",
        "10.0.0.0/8, 127.0.0.1",
        "--callback-schedule",
        "0.05s,100ms,2m,1h",
        "--callback-timeout",
        "2.5s",
        "--webhook-secret-overlap",
        "2d",
    )

    assert settings.allow == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"))
    assert settings.schedule_s == (0.05, 0.1, 120, 3600)
    assert settings.timeout_s == 2.5
    assert settings.secret_rotation_window_s == 2 * 86400


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--callback-allow", "10.0.0.0/33"),
        ("--callback-allow", "intranet"),
        ("--callback-schedule", "5s,soon"),
        ("--callback-schedule", ","),
        ("--callback-timeout", "-1s"),
        ("--callback-concurrency", "0"),
    ],
)
def test_a_bad_value_is_a_usage_error_naming_it(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        parsed(flag, value)

    assert exit_.value.code == 2
    assert flag in capsys.readouterr().err
