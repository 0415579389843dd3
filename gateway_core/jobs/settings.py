"""How the queue runs jobs: corral-core's --queue-share, --job-timeout and --job-attempts."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_QUEUE_SHARE = 0.5
DEFAULT_JOB_TIMEOUT_S = 20 * 60.0
DEFAULT_JOB_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class JobSettings:
    queue_share: float = (
        DEFAULT_QUEUE_SHARE  # while synchronous requests wait, jobs hold at most this of a provider's slots
    )
    job_timeout_s: float = DEFAULT_JOB_TIMEOUT_S  # an attempt running longer is cancelled and the job fails
    job_attempts: int = DEFAULT_JOB_ATTEMPTS  # attempts before the job fails
