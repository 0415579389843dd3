"""What the operator configures about callbacks: which private ranges they may reach, the retry schedule, timeouts."""

from __future__ import annotations

import argparse
import ipaddress
import re
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Standard Webhooks' schedule: the wait after each failed attempt (the first is sent at once). 10 attempts in all.
DEFAULT_SCHEDULE_S: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
DEFAULT_TIMEOUT_S = 15.0
DEFAULT_CONCURRENCY = 32
DAY_S = 86400.0

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


@dataclass(frozen=True, slots=True)
class CallbackSettings:
    """corral-core's callback flags, read once at start."""

    allow: tuple[Network, ...] = ()  # refused ranges (loopback, private, ...) a callback may reach all the same
    schedule_s: tuple[float, ...] = DEFAULT_SCHEDULE_S  # the wait after each failed attempt; then dead-lettered
    timeout_s: float = DEFAULT_TIMEOUT_S  # one attempt, connect to last byte
    concurrency: int = DEFAULT_CONCURRENCY  # attempts in flight at once
    jitter: float = 0.1  # each wait is stretched or shrunk by up to this fraction, so retries do not arrive in step
    secret_rotation_window_s: float = DAY_S  # how long a rotated-out webhook secret keeps signing

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group(
            "callbacks", "ReplyTo callbacks of queued jobs, signed as Standard Webhooks and retried on a schedule"
        )
        group.add_argument(
            "--callback-allow",
            type=networks,
            default=(),
            metavar="CIDR,...",
            help="let callbacks reach these ranges, otherwise refused (loopback, private, link-local, CGNAT); "
            "e.g. 10.0.0.0/8,127.0.0.1/32 (default: public addresses only)",
        )
        group.add_argument(
            "--callback-schedule",
            type=schedule,
            default=DEFAULT_SCHEDULE_S,
            metavar="WAIT,...",
            help="the wait after each failed attempt, then the delivery is dead-lettered "
            "(default: 5s,5m,30m,2h,5h,10h,14h,20h,24h)",
        )
        group.add_argument(
            "--callback-timeout",
            type=duration,
            default=DEFAULT_TIMEOUT_S,
            metavar="DURATION",
            help="how long one attempt may take before it counts as failed (default: 15s)",
        )
        group.add_argument(
            "--callback-concurrency",
            type=_positive_int,
            default=DEFAULT_CONCURRENCY,
            metavar="N",
            help="callback attempts in flight at once (default: %(default)s)",
        )
        group.add_argument(
            "--webhook-secret-overlap",
            type=duration,
            default=DAY_S,
            metavar="DURATION",
            help="after a key's webhook secret is rotated, how long the old one keeps signing too (default: 24h)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> CallbackSettings:
        return cls(
            allow=tuple(args.callback_allow),
            schedule_s=tuple(args.callback_schedule),
            timeout_s=args.callback_timeout,
            concurrency=args.callback_concurrency,
            secret_rotation_window_s=args.webhook_secret_overlap,
        )


def duration(text: str) -> float:
    """Seconds from "15s", "5m", "2h", "1d", "50ms" or a bare number of seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"'{text}' is not a duration: write e.g. 15s, 5m, 2h, 1d or 50ms")
    return float(match[1]) * _UNIT_S[match[2]]


def schedule(text: str) -> tuple[float, ...]:
    steps = tuple(duration(part) for part in text.split(",") if part.strip())
    if not steps:
        raise argparse.ArgumentTypeError("the callback schedule needs at least one wait, e.g. 5s,5m,30m")
    return steps


def networks(text: str) -> tuple[Network, ...]:
    found: list[Network] = []
    for part in (part.strip() for part in text.split(",")):
        if not part:
            continue
        try:
            found.append(ipaddress.ip_network(part, strict=False))
        except ValueError as error:
            raise argparse.ArgumentTypeError(
                f"'{part}' is not an address range: write e.g. 10.0.0.0/8 ({error})"
            ) from error
    return tuple(found)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive whole number")
    return int(text)
