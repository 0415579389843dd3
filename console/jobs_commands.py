"""`corral jobs …`, `corral callbacks …` and `corral keys rotate-webhook-secret`: the queue through CorralClient.

The daemon queues, runs, retries and delivers; these commands ask and print. --json prints the admin API's own
JSON (a list command: its page shape, every page's rows in one `data`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from gateway_core.client import CorralClient
from gateway_core.contracts.jobs import FINAL_STATES, DeliveryView, JobPage, JobView

from .cli_format import print_json, table
from .format import dash, until, utc_time
from .job_format import delivery_outcome, delivery_when, job_age, job_error, job_facts
from .job_state import counts_line

# Rows asked per page when --limit is larger: the most the daemon's GET /jobs and GET /callbacks answer at once.
JOB_PAGE = 100
DELIVERY_PAGE = 200


async def _key_names(client: CorralClient) -> dict[str, str]:
    return {key["id"]: key["name"] for key in await client.keys()}


# -- jobs -------------------------------------------------------------------------------------------------


JOB_HEADERS = ["ID", "KEY", "MODEL", "STATE", "AGE", "ATTEMPTS", "PROVIDER", "TAG", "REF_ID", "ERROR"]


def job_row(job: JobView, names: dict[str, str], now: float) -> list[object]:
    return [
        job["id"],
        names.get(job["key_id"], job["key_id"]),
        job["model"],
        job["state"],
        job_age(job, now),
        job["attempts"],
        dash(job["provider"]),
        dash(job["tag"]),
        dash(job["ref_id"]),
        job_error(job),
    ]


async def jobs_list(client: CorralClient, args: argparse.Namespace) -> int:
    names = await _key_names(client)
    by_name = {name: key_id for key_id, name in names.items()}
    key = by_name.get(args.key, args.key) if args.key is not None else None  # the daemon filters by id
    jobs: list[JobView] = []
    cursor: str | None = None
    while len(jobs) < args.limit:  # bounded: each page is at least one row, or the cursor ends it
        page = await client.list_jobs(
            state=args.state, key=key, tag=args.tag, limit=min(JOB_PAGE, args.limit - len(jobs)), cursor=cursor
        )
        jobs.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None or not page["data"]:
            break
    if args.json:
        listing: JobPage = {"object": "list", "data": jobs, "next_cursor": cursor}
        print_json(listing)
        return 0
    print(f"jobs: {counts_line(await client.job_counts())}")
    if not jobs:
        print("no jobs match: drop a filter, or submit one to POST /v1/queue/chat/completions")
        return 0
    now = time.time()
    print(table(JOB_HEADERS, [job_row(job, names, now) for job in jobs]))
    if cursor is not None:
        print(f"(the newest {len(jobs)}; --limit N shows more)")
    return 0


async def jobs_show(client: CorralClient, args: argparse.Namespace) -> int:
    job = await client.job(args.id)
    if args.json:
        print_json(job)
        return 0
    names = await _key_names(client)
    pairs = job_facts(job, names.get(job["key_id"]), time.time())
    width = max(len(name) for name, _ in pairs)
    for name, value in pairs:
        print(f"{name.ljust(width)}  {value}")
    if job["result"] is not None:
        print()
        print("result:")
        print(json.dumps(job["result"], indent=2, ensure_ascii=False))
    return 0


async def jobs_cancel(client: CorralClient, args: argparse.Namespace) -> int:
    before = await client.job(args.id)  # the daemon answers a cancel of an ended job with the job as it is
    job = before if before["state"] in FINAL_STATES else await client.cancel_job(args.id)
    if job["state"] != "cancelled" or before["state"] in FINAL_STATES:
        retry = f"; `corral jobs retry {job['id']}` queues it again" if job["state"] != "succeeded" else ""
        print(f"corral: job {job['id']} has already ended ({job['state']}): nothing to cancel{retry}", file=sys.stderr)
        return 1
    where = (
        f" (it was running on {before['provider']}; its upstream request is cancelled)"
        if before["state"] == "running"
        else ""
    )
    print(f"cancelled job {job['id']}{where}")
    return 0


async def jobs_retry(client: CorralClient, args: argparse.Namespace) -> int:
    job = await client.retry_job(args.id)
    print(f"job {job['id']} is {job['state']} again (after {job['attempts']} attempts); `corral jobs show {job['id']}`")
    return 0


# -- callbacks --------------------------------------------------------------------------------------------


DELIVERY_HEADERS = ["ID", "JOB", "TYPE", "STATE", "ATTEMPTS", "LAST ANSWER", "WHEN", "URL"]


def delivery_row(delivery: DeliveryView, now: float) -> list[object]:
    return [
        delivery["id"],
        delivery["job_id"],
        delivery["type"],
        delivery["state"],
        delivery["attempts"],
        delivery_outcome(delivery),
        delivery_when(delivery, now),
        delivery["url"],
    ]


async def callbacks_list(client: CorralClient, args: argparse.Namespace) -> int:
    deliveries: list[DeliveryView] = []
    cursor: str | None = None
    while len(deliveries) < args.limit:
        page = await client.list_deliveries(
            state=args.state, limit=min(DELIVERY_PAGE, args.limit - len(deliveries)), cursor=cursor
        )
        deliveries.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None or not page["data"]:
            break
    if args.json:
        print_json({"object": "list", "data": deliveries, "next_cursor": cursor})
        return 0
    if not deliveries:
        which = f"{args.state} " if args.state else ""
        print(f"no {which}callback deliveries: a job submitted with a reply_to gets one when it ends")
        return 0
    now = time.time()
    print(table(DELIVERY_HEADERS, [delivery_row(delivery, now) for delivery in deliveries]))
    return 0


async def callbacks_redeliver(client: CorralClient, args: argparse.Namespace) -> int:
    delivery = await client.redeliver(args.id)
    print(
        f"delivery {delivery['id']} (job {delivery['job_id']}) is {delivery['state']} again: "
        f"{delivery_when(delivery, time.time())}, to {delivery['url']}"
    )
    return 0


# -- a key's webhook secret -------------------------------------------------------------------------------


async def keys_rotate_webhook_secret(client: CorralClient, args: argparse.Namespace) -> int:
    rotated = await client.rotate_webhook_secret(args.id_or_name)
    if args.json:
        print_json(rotated)
        return 0
    previous = rotated["previous_valid_until"]
    if previous is None:
        print(f"key {rotated['key_id']} signs its callbacks with a new webhook secret (it had none before).")
    else:
        print(
            f"key {rotated['key_id']} signs its callbacks with a new webhook secret; the previous one signs too "
            f"until {utc_time(previous)} UTC ({until(previous, time.time())}), so receivers can switch."
        )
    print("This secret is shown only once. Give it to the receivers now:")
    print(rotated["webhook_secret"])  # alone on the last line, as `corral keys create` prints its key
    return 0
