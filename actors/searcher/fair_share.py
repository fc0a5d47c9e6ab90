"""Fair scheduling of SETI jobs across users: the policy, as pure functions.

The searchers share one durable consumer that hands out jobs in stream order, so ten jobs from
alice followed by one from bob would hold every searcher until alice's last one started. Before a
searcher starts a job it asks :func:`decide`: if the job's user already has ``max_running`` jobs
running across all searchers (counted from the claims in the ``SEARCH_CLAIMS`` KV bucket) while
other jobs wait, the job is deferred (nak'd with a short delay, which ``bus.consume`` does not count
as a failed delivery) and the searcher takes the next message instead.

What "other jobs wait" means here: the consumer still has messages no searcher has looked at yet
(``num_pending``). That is cheap (one ``consumer_info``) and self-limiting: a lone user's jobs are
each deferred at most until every queued message has been seen once, and then run on every
searcher. A message is never deferred more than ``max_deferrals`` times, so nothing starves.

The count and the claim are not atomic (two searchers may both see 0 and both start one of a
user's jobs): fairness is a soft share, not a lock, and a claim left by a killed searcher expires
with the bucket's TTL (a running job refreshes its claim every third of it).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

#: the KV bucket of running jobs, one key ``<user>.<job>`` per job
BUCKET = "SEARCH_CLAIMS"
#: seconds a claim outlives its last refresh (the bucket's TTL): how long a killed searcher's job
#: still counts against its user
CLAIM_TTL_S = 30.0

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class Policy:
    #: a user's jobs running at once (across all searchers) before their next one yields; 0: off
    max_running: int = 1
    #: most deferrals of one message: after that it runs whatever is waiting
    max_deferrals: int = 10
    #: seconds a deferred job waits on the server before it is offered again
    delay_s: float = 1.0


def user_token(text: str) -> str:
    """A KV key token (``[A-Za-z0-9_-]``, no dots) that keeps distinct ids distinct."""
    return _UNSAFE.sub(lambda m: f"_{ord(m.group()):x}_", text.replace("_", "__"))


def claim_key(user_id: str, job_id: str) -> str:
    return f"{user_token(user_id)}.{user_token(job_id)}"


def running_by_user(keys: Iterable[str]) -> Counter[str]:
    """Jobs running per user (as key tokens) from the bucket's keys."""
    return Counter(key.split(".", 1)[0] for key in keys if "." in key)


def decide(user_id: str, running: Counter[str], others_waiting: bool, deferrals: int, policy: Policy) -> float | None:
    """Seconds to defer this job by, or ``None`` to start it now.

    ``running`` is from :func:`running_by_user` and does not include this job; ``deferrals`` is how
    many times this message was deferred already.
    """
    if policy.max_running <= 0 or not others_waiting or deferrals >= policy.max_deferrals:
        return None
    if running.get(user_token(user_id), 0) < policy.max_running:
        return None
    return policy.delay_s
