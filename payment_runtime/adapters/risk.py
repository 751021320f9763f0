"""The Redis I/O of the risk checks: velocity windows and rate-limit counters.

Each check is one atomic round trip (and a payment's rate-limit count and velocity check
together are one, :data:`SCREEN_SCRIPT`): a Lua script (EVALSHA, and EVAL when the server
does not know the script yet), so concurrent requests of one
customer or client cannot slip past a limit between a read and a write.  Every call is
bounded by ``timeout`` as a whole (waiting for a free connection, connecting, the
reply) and is never retried: a Redis that is down or slow is :class:`RiskStoreUnavailable`
at once, and the failure mode (:mod:`payment_runtime.risk`) decides what that means.

The redis-py asyncio client (``redis`` on PyPI) does the protocol; :class:`RiskStore` keeps
its idle connections.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from redis.asyncio.connection import Connection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError, ResponseError

from payment_runtime.domain import ratelimit, velocity
from payment_runtime.domain.velocity import Check

#: The velocity rules as a Lua function of the offsets of its keys (``ko``) and arguments
#: (``ao``), so the same text runs alone (:data:`VELOCITY_SCRIPT`) and after a rate-limit
#: count in one call (:data:`SCREEN_SCRIPT`).
_VELOCITY_FUNCTION = """
local function velocity(ko, ao)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local member, currency, amount = ARGV[ao + 1], ARGV[ao + 2], tonumber(ARGV[ao + 3])
  local limits = {}
  for w, a, m in string.gmatch(ARGV[ao + 4], '(%-?%d+),(%-?%d+),(%-?%d+)') do
    limits[#limits + 1] = {tonumber(w), tonumber(a), tonumber(m)}
  end
  local n = #limits
  for i = 1, n do
    local set, sums = KEYS[ko + 2 * i - 1], KEYS[ko + 2 * i]
    local window, max_attempts, max_amount = limits[i][1], limits[i][2], limits[i][3]
    local cutoff = now - window
    if max_amount ~= -1 then
      for _, m in ipairs(redis.call('ZRANGEBYSCORE', set, '-inf', cutoff)) do
        local cur, amt = string.match(m, ':(%u+):(%d+)$')
        if cur then redis.call('HINCRBY', sums, cur, -tonumber(amt)) end
      end
    end
    redis.call('ZREMRANGEBYSCORE', set, '-inf', cutoff)
    if not redis.call('ZSCORE', set, member) then
      local over = max_attempts >= 0 and redis.call('ZCARD', set) >= max_attempts
      if not over and max_amount >= 0 then
        local sum = tonumber(redis.call('HGET', sums, currency) or '0')
        over = sum + amount > max_amount
      end
      if over then
        local oldest = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')
        local retry = window
        if oldest[2] then retry = tonumber(oldest[2]) + window - now end
        return {i, retry}
      end
    end
  end
  for i = 1, n do
    local set, sums = KEYS[ko + 2 * i - 1], KEYS[ko + 2 * i]
    local window, track = limits[i][1], limits[i][3] ~= -1
    if redis.call('ZADD', set, 'NX', now, member) == 1 and track then
      redis.call('HINCRBY', sums, currency, amount)
    end
    redis.call('PEXPIRE', set, window)
    if track then redis.call('PEXPIRE', sums, window) end
  end
  return {0, 0}
end
"""

#: A client's request counter, a Lua function: INCR, and the window's expiry set when
#: the counter is new. Returns {count, ms left}.
_RATE_FUNCTION = """
local function rate(key, window)
  local n = redis.call('INCR', key)
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    redis.call('PEXPIRE', key, window)
    ttl = tonumber(window)
  end
  return {n, ttl}
end
"""

#: KEYS: per limit, its window's sorted set of attempts and the hash of their amounts by
#: currency (kept as running sums, so an amount limit costs no scan of the window). ARGV:
#: member, currency, amount, then the limits as ``window_ms,max_attempts,max_amount;...``
#: (max attempts -1: none; max amount in the charge's currency -1: a count-only limit, its
#: sums are not kept; -2: sums kept, this currency not limited). Returns {index of the
#: limit that refuses (1-based) or 0, ms until it may admit}. Expired attempts leave the
#: set and the sums first; the attempt is recorded in every window only when all admit it;
#: one already in a window (a retry of the same idempotency key) is not counted again. Time
#: is the server's, so every pod shares one clock.
VELOCITY_SCRIPT = _VELOCITY_FUNCTION + "return velocity(0, 0)\n"

#: KEYS[1]: a client's counter; ARGV[1]: the window (ms). Returns {count, ms left}.
RATE_SCRIPT = _RATE_FUNCTION + "return rate(KEYS[1], ARGV[1])\n"

#: A payment's whole screen in one round trip: KEYS[1] and ARGV[1..2] are the client's
#: counter, its window (ms) and quota; the rest are :data:`VELOCITY_SCRIPT`'s. Returns
#: {count, ms left, velocity's two answers}; a request over the quota is not screened (so
#: not recorded in any window): its velocity answers are {-1, 0}.
SCREEN_SCRIPT = _RATE_FUNCTION + _VELOCITY_FUNCTION + """
local r = rate(KEYS[1], ARGV[1])
if r[1] > tonumber(ARGV[2]) then return {r[1], r[2], -1, 0} end
local v = velocity(1, 2)
return {r[1], r[2], v[1], v[2]}
"""


async def _stale(conn: Connection) -> bool:
    """Whether an idle connection must not be used: it holds unread data, or the server
    closed it (redis-py before 8.2 answers True for that, 8.2 and later raise instead)."""
    try:
        return bool(await conn.can_read())
    except (RedisError, OSError):
        return True


class RiskStoreUnavailable(Exception):
    """Redis did not answer in time, refused the connection or failed the script."""


class _Script:
    """A Lua script by its SHA1: EVALSHA, and EVAL once the server says it does not know it
    (a Redis restarted or failed over forgets its scripts)."""

    def __init__(self, source: str) -> None:
        self.source = source
        # Redis names scripts by SHA1: an identifier, not a security measure.
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


class RiskStore:
    """The scripts over a few connections of redis-py's.

    redis-py does the protocol (a :class:`~redis.asyncio.connection.Connection` each: the
    URL's TLS and login, the parser, disconnecting on any failure or cancellation); this
    store keeps the idle ones itself, at most ``max_connections`` in use. redis-py's pools
    cost more per call than the round trip did (a condition, a lock, timers and metric hooks
    at every checkout: about 70 to 90 µs a call, measured in isolation); what they check at a
    checkout is kept: a connection the server closed while it was idle, or that holds unread
    data, is reconnected before it is used.
    """

    def __init__(self, url: str, *, timeout: float, max_connections: int) -> None:
        self.timeout = timeout
        # The whole call is bounded by ``timeout`` (asyncio.timeout): no per-read timer.
        self._factory = ConnectionPool.from_url(
            url, socket_timeout=None, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[Connection] = []
        self._velocity = _Script(VELOCITY_SCRIPT)
        self._rate = _Script(RATE_SCRIPT)
        self._screen = _Script(SCREEN_SCRIPT)

    def _new_connection(self) -> Connection:
        """A connection of the URL's kind (TLS for ``rediss://``), connected on first use."""
        conn: Connection = self._factory.make_connection()  # type: ignore[no-untyped-call]
        return conn

    async def _command(self, *args: str | int) -> Any:
        """One command on an idle (or new) connection, within ``timeout``."""
        async with asyncio.timeout(self.timeout), self._slots:
            conn = self._idle.pop() if self._idle else self._new_connection()
            try:
                if conn.is_connected and await _stale(conn):
                    await conn.disconnect()  # closed by the server, or not ours to read
                await conn.send_packed_command(conn.pack_command(*args), check_health=False)
                return await conn.read_response()
            except ResponseError:
                raise  # Redis's own error reply, read whole: the connection stays usable
            except BaseException:
                await conn.disconnect(nowait=True)  # a reply may still be on its way
                raise
            finally:
                self._idle.append(conn)

    async def _call(self, script: _Script, keys: list[str], args: list[str | int]) -> list[int]:
        try:
            try:
                answer = await self._command("EVALSHA", script.sha, len(keys), *keys, *args)
            except NoScriptError:
                answer = await self._command("EVAL", script.source, len(keys), *keys, *args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise RiskStoreUnavailable(type(exc).__name__) from exc
        return [int(x) for x in answer]

    async def velocity(self, check: velocity.Check) -> list[int]:
        """Run the velocity script: ``[refusing limit's index or 0, retry after ms]``."""
        return await self._call(self._velocity, check.keys, check.args)

    async def screen(
        self, rate_key: str, quota: ratelimit.Quota, check: Check
    ) -> list[int]:
        """Count the request, then (within its quota) run the velocity check, in one call:
        ``[count, ms until the window ends, refusing limit's index or 0 (-1: not screened,
        over the quota), retry after ms]``."""
        return await self._call(
            self._screen,
            [rate_key, *check.keys],
            [quota.window_seconds * 1000, quota.requests, *check.args],
        )

    async def count_request(self, key: str, window_seconds: int) -> list[int]:
        """Count one request in its client's window: ``[count, ms until it ends]``."""
        return await self._call(self._rate, [key], [window_seconds * 1000])

    async def ping(self) -> bool:
        """Whether Redis answers within the timeout."""
        try:
            return bool(await self._command("PING"))
        except (RedisError, OSError, TimeoutError):
            return False

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.disconnect()
