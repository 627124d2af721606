"""The shared upstream work queue: jobs (one random-images call each) in a Redis sorted set.

* **Enqueue** (:meth:`WorkQueue.enqueue`): a job is keyed by what it asks for (its *dedupe*
  key); an in-flight marker with a TTL makes the same ask from two processes one job. A member's
  ask raises a queued background job to members' priority.
* **Order**: score = priority × 10¹³ + enqueue time (ms, Redis's clock): members' shared
  batches, then lookups, then background work, oldest first.
* **Take** (:meth:`WorkQueue.take`): the head job at or above a priority moves to a lease set
  (expiring after ``lease`` seconds); leases that expired (their taker died, even by kill -9)
  go back to the queue first. **Finish** publishes the batch on the stream (:mod:`.feed`) and
  drops the job and its marker, in one script.

Scripts rather than MULTI: each step reads before it writes (is there a marker, is the job still
there), which a transaction cannot do without WATCH retries.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from .link import ClusterLink

__all__ = ["PRIORITY_SPAN", "Job", "JobSpec", "WorkQueue"]

PRIORITY_SPAN = 10**13
"""Score units per priority level (more than any enqueue time in ms)."""

_ENQUEUE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local span = tonumber(ARGV[7])
local score = tonumber(ARGV[3]) * span + now
local existing = redis.call('GET', KEYS[1])
if existing then
  local jk = ARGV[6] .. existing
  local old = tonumber(redis.call('HGET', jk, 'score'))
  if old then
    local raised = tonumber(ARGV[3]) * span + (old % span)
    if raised < old then
      redis.call('HSET', jk, 'score', raised)
      redis.call('ZADD', KEYS[2], 'XX', raised, existing)
    end
    return {existing, 0}
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
redis.call('HSET', KEYS[3], 'spec', ARGV[2], 'score', score, 'dedupe', ARGV[8])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call('ZADD', KEYS[2], score, ARGV[1])
return {ARGV[1], 1}
"""

_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  redis.call('ZREM', KEYS[2], id)
  local score = redis.call('HGET', ARGV[4] .. id, 'score')
  if score then redis.call('ZADD', KEYS[1], score, id) end
end
local bound = tonumber(ARGV[1])
local age = tonumber(ARGV[5])
if age > 0 then bound = math.min(bound, now - age) end
for _ = 1, 16 do
  local head = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', bound, 'WITHSCORES', 'LIMIT', 0, 1)
  if #head == 0 then return false end
  local id = head[1]
  redis.call('ZREM', KEYS[1], id)
  local jk = ARGV[4] .. id
  local spec = redis.call('HGET', jk, 'spec')
  if spec then
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), id)
    redis.call('HSET', jk, 'taker', ARGV[3])
    return {id, spec, head[2], redis.call('HGET', jk, 'dedupe')}
  end
end
return false
"""

_FINISH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local minid = tostring(now - tonumber(ARGV[2])) .. '-0'
redis.call('XADD', KEYS[1], 'MINID', '~', minid, '*', 'dedupe', ARGV[3], 'job', ARGV[1],
  'by', ARGV[4], 'images', ARGV[5], 'error', ARGV[6])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
return 1
"""

_RELEASE = """
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  local score = redis.call('HGET', KEYS[3], 'score')
  if score then redis.call('ZADD', KEYS[1], score, ARGV[1]) end
end
return 1
"""

_WITHDRAW = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2])
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
return 1
"""

_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])
"""


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One random-images call: what the pool's ``source.random_images`` was asked."""

    categories: tuple[str, ...]
    limit: int
    expiry: int | None = None
    ratings: tuple[int, ...] | None = None
    without_tags: tuple[str, ...] | None = None

    def to_text(self) -> str:
        return json.dumps(
            {
                "categories": list(self.categories),
                "limit": self.limit,
                "expiry": self.expiry,
                "ratings": None if self.ratings is None else list(self.ratings),
                "without_tags": None if self.without_tags is None else list(self.without_tags),
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_text(cls, text: str | bytes) -> JobSpec:
        data: dict[str, Any] = json.loads(text)
        ratings, without = data.get("ratings"), data.get("without_tags")
        return cls(
            categories=tuple(str(c) for c in data["categories"]),
            limit=int(data["limit"]),
            expiry=None if data.get("expiry") is None else int(data["expiry"]),
            ratings=None if ratings is None else tuple(int(r) for r in ratings),
            without_tags=None if without is None else tuple(str(t) for t in without),
        )

    @property
    def dedupe(self) -> str:
        """The same ask gives the same key in every process."""
        return hashlib.sha1(self.to_text().encode(), usedforsecurity=False).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    spec: JobSpec
    priority: int
    dedupe: str


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class WorkQueue:
    """The queue's operations (each one script). Errors propagate: callers decide the fallback."""

    def __init__(
        self,
        link: ClusterLink,
        *,
        lease: float = 15.0,
        marker_ttl: float = 30.0,
        stream_keep: float = 60.0,
    ) -> None:
        self._link = link
        self.lease = lease
        self.marker_ttl = marker_ttl
        self.stream_keep = stream_keep
        redis = link.redis
        self._enqueue = redis.register_script(_ENQUEUE)
        self._take = redis.register_script(_TAKE)
        self._finish = redis.register_script(_FINISH)
        self._release = redis.register_script(_RELEASE)
        self._withdraw = redis.register_script(_WITHDRAW)
        self._heartbeat = redis.register_script(_HEARTBEAT)
        self.queue_key = link.key("queue")
        self.leases_key = link.key("leases")
        self.stream_key = link.key("batches")
        self.fetchers_key = link.key("fetchers")

    def _job_key(self, job_id: str) -> str:
        return self._link.key("job", job_id)

    def _marker_key(self, dedupe: str) -> str:
        return self._link.key("inflight", dedupe)

    async def enqueue(self, spec: JobSpec, priority: int) -> tuple[str, bool]:
        """The job for ``spec`` (a new one, or the one already in flight): its id, and whether
        this call created it."""
        job_id = uuid.uuid4().hex
        dedupe = spec.dedupe
        ttl = int(self.marker_ttl * 1000)
        result = await self._enqueue(
            keys=[self._marker_key(dedupe), self.queue_key, self._job_key(job_id)],
            args=[
                job_id,
                spec.to_text(),
                priority,
                ttl,
                ttl * 2,
                self._link.key("job", ""),
                PRIORITY_SPAN,
                dedupe,
            ],
        )
        return _text(result[0]), bool(int(result[1]))

    async def take(self, max_priority: int, owner: str, *, min_age: float = 0.0) -> Job | None:
        """Lease the head job of priority ``max_priority`` or higher (lower number); with
        ``min_age`` (seconds, for the top priority only), only a job queued at least that long."""
        bound = (max_priority + 1) * PRIORITY_SPAN - 1
        found = await self._take(
            keys=[self.queue_key, self.leases_key],
            args=[
                bound,
                int(self.lease * 1000),
                owner,
                self._link.key("job", ""),
                int(min_age * 1000),
            ],
        )
        if not found:
            return None
        job_id, spec, score, dedupe = (_text(v) for v in found)
        return Job(job_id, JobSpec.from_text(spec), int(float(score)) // PRIORITY_SPAN, dedupe)

    async def finish(self, job: Job, by: str, images_text: str, error: str) -> None:
        """Publish the job's batch (or its error) and drop the job."""
        await self._finish(
            keys=[
                self.stream_key,
                self.leases_key,
                self._job_key(job.id),
                self._marker_key(job.dedupe),
            ],
            args=[job.id, int(self.stream_keep * 1000), job.dedupe, by, images_text, error],
        )

    async def release(self, job: Job) -> None:
        """Give a leased job back to the queue (its taker cannot call now)."""
        await self._release(
            keys=[self.queue_key, self.leases_key, self._job_key(job.id)], args=[job.id]
        )

    async def withdraw(self, job_id: str, dedupe: str) -> bool:
        """Remove a job nobody has taken; whether it was still queued."""
        removed = await self._withdraw(
            keys=[self.queue_key, self._job_key(job_id), self._marker_key(dedupe)], args=[job_id]
        )
        return bool(int(removed))

    async def heartbeat(self, owner: str, ttl: float) -> int:
        """Say this process's fetcher is alive; how many fetchers were alive within ``ttl``."""
        count = await self._heartbeat(keys=[self.fetchers_key], args=[owner, int(ttl * 1000)])
        return int(count)
