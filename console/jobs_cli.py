"""The `corral jobs …` and `corral callbacks …` argument parsers."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from gateway_core.contracts.jobs import JOB_STATES

from . import jobs_commands
from .arg_types import positive_int

Command = Callable[..., argparse.ArgumentParser]
DELIVERY_STATES = ("pending", "delivered", "dead")


def add_jobs_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], command: Command, common: argparse.ArgumentParser
) -> None:
    jobs = sub.add_parser("jobs", help="list, show, cancel and retry queued jobs (every key's)", parents=[common])
    jsub = jobs.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = command(jsub, "list", jobs_commands.jobs_list, "jobs, newest first, with the counts by state", json=True)
    listing.add_argument("--state", choices=JOB_STATES, help="only jobs in this state")
    listing.add_argument("--key", metavar="NAME", help="only this key's jobs (its name or id)")
    listing.add_argument("--tag", metavar="T", help="only jobs submitted with this tag")
    listing.add_argument("--limit", type=positive_int, default=100, metavar="N", help="at most N jobs (default 100)")
    show = command(jsub, "show", jobs_commands.jobs_show, "one job's status, its result included", json=True)
    show.add_argument("id", metavar="ID", help="the job id, job_…")
    command(
        jsub, "cancel", jobs_commands.jobs_cancel, "cancel a queued or running job (a running one's slot is freed)"
    ).add_argument("id", metavar="ID")
    command(jsub, "retry", jobs_commands.jobs_retry, "queue a failed or cancelled job again").add_argument(
        "id", metavar="ID"
    )

    callbacks = sub.add_parser(
        "callbacks", help="list signed ReplyTo deliveries and redeliver dead-lettered ones", parents=[common]
    )
    csub = callbacks.add_subparsers(dest="action", metavar="ACTION", required=True)
    deliveries = command(csub, "list", jobs_commands.callbacks_list, "callback deliveries, newest first", json=True)
    deliveries.add_argument("--state", choices=DELIVERY_STATES, help="dead: every attempt failed, or a 410")
    deliveries.add_argument("--limit", type=positive_int, default=100, metavar="N", help="at most N (default 100)")
    command(
        csub, "redeliver", jobs_commands.callbacks_redeliver, "send a delivery again, on a fresh retry schedule"
    ).add_argument("id", metavar="ID", help="the delivery id (its webhook-id header), msg_…")
