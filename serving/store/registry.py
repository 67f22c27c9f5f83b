"""The version registry: which versions exist, which is active, who is publishing one.

Publishing writes version V under its own namespace (``serving.store.bulk``), verifies the
counters, marks V complete, then switches ``active`` atomically with a Lua script (the
previous version is kept for rollback; older ones get a TTL). Re-running a publish of a
version that is not active first deletes its namespace, so a crashed half-written version
never becomes active and never leaves stale keys behind. One process at a time writes a
version: it holds a lease that every write renews (``StoreConfig.publish_lease_s``); a second
publisher of V gets :class:`PublishInProgress`, and a killed publisher's lease lapses by itself.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from serving.store.base import StoreBase
from serving.store.codec import VersionInfo, to_str
from serving.store.keys import check_version


class NoActiveVersion(LookupError):
    """No version is active, or the version asked for is not (or no longer) in the store.

    The API answers degraded on it; any other error while reading is a bug to report."""


class PublishInProgress(RuntimeError):
    """Another publisher holds the version (or took it over from this one)."""


_SWITCH = """
local raw = redis.call('HGET', KEYS[3], ARGV[1])
if not raw then return redis.error_reply('unknown version ' .. ARGV[1]) end
if cjson.decode(raw)['status'] ~= 'complete' then
  return redis.error_reply('version ' .. ARGV[1] .. ' is not complete')
end
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then return cur end
redis.call('SET', KEYS[1], ARGV[1])
if cur then redis.call('SET', KEYS[2], cur) end
return cur or ''
"""
"""Atomically make ARGV[1] active (it must be complete) and the old active the previous."""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
"""Extend a publishing lease if the caller (token ARGV[1]) still holds it."""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
"""Drop a publishing lease if the caller (token ARGV[1]) still holds it."""

_ROLLBACK = """
local prev = redis.call('GET', KEYS[2])
if not prev then return redis.error_reply('no previous version to roll back to') end
local raw = redis.call('HGET', KEYS[3], prev)
if (not raw) or cjson.decode(raw)['status'] ~= 'complete' then
  return redis.error_reply('previous version ' .. prev .. ' is no longer available')
end
local cur = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], prev)
if cur then redis.call('SET', KEYS[2], cur) else redis.call('DEL', KEYS[2]) end
return prev
"""
"""Atomically swap active and previous (a second rollback undoes the first)."""


def pointer(raw: bytes | str | None) -> str | None:
    """A version pointer's reply as the version name (None: not set)."""
    return to_str(raw) if raw is not None else None


class Registry(StoreBase):
    """Versions, activation, rollback and the publishing lease (the sync store's part)."""

    def _init_registry(self) -> None:
        self._switch = self.client.register_script(_SWITCH)
        self._rollback = self.client.register_script(_ROLLBACK)
        self._renew_script = self.client.register_script(_RENEW)
        self._release_script = self.client.register_script(_RELEASE)
        self._leases: dict[str, str] = {}  # version -> our token, while we write it

    # ---- pointers and infos --------------------------------------------------------------------
    def active_version(self) -> str | None:
        """The active version, or None when nothing was published yet."""
        return pointer(self.client.get(self.keys.active))

    def previous_version(self) -> str | None:
        return pointer(self.client.get(self.keys.previous))

    def versions(self) -> dict[str, VersionInfo]:
        raw = self.client.hgetall(self.keys.versions)
        return {to_str(k): VersionInfo.from_json(v) for k, v in raw.items()}

    def version_info(self, version: str) -> VersionInfo | None:
        raw = self.client.hget(self.keys.versions, version)
        return VersionInfo.from_json(raw) if raw is not None else None

    def _put_info(self, info: VersionInfo) -> None:
        self.client.hset(self.keys.versions, info.version, info.to_json())

    def _unlink_namespace(self, version: str, ttl: int | None = None) -> int:
        """Delete (ttl None/0) or expire every key of a version's namespace; returns the count."""
        n = 0
        batch: list[bytes] = []
        pattern = self.keys.namespace(version) + "*"
        pipe = self.client.pipeline(transaction=False)
        for key in self.client.scan_iter(match=pattern, count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                n += self._drop(pipe, batch, ttl)
                batch = []
        if batch:
            n += self._drop(pipe, batch, ttl)
        return n

    @staticmethod
    def _drop(pipe: Any, keys: list[bytes], ttl: int | None) -> int:
        if ttl:
            for key in keys:
                pipe.expire(key, ttl)
        else:
            pipe.unlink(*keys)
        pipe.execute()
        return len(keys)

    # ---- publishing lease: one writer per version ----------------------------------------------
    def _claim(self, version: str) -> None:
        """Hold ``version`` for this publisher (renewed by every write, released by
        :meth:`finish_version` or :meth:`release`); PublishInProgress if another holds it."""
        if version in self._leases:
            self._renew(version)
            return
        token = uuid.uuid4().hex
        key = self.keys.lease(version)
        if not self.client.set(key, token, nx=True, px=self._lease_ms):
            left = max(0, int(self.client.pttl(key))) / 1000
            raise PublishInProgress(
                f"version {version} is being published by another process; wait for it to "
                f"finish (a publisher that died lets go within {left:.0f} s)"
            )
        self._leases[version] = token

    @property
    def _lease_ms(self) -> int:
        return max(1, int(self.config.publish_lease_s * 1000))

    def _renew(self, version: str) -> None:
        token = self._leases.get(version)
        if token is None:  # not publishing through this store (e.g. a hand-made version)
            return
        if not self._renew_script(keys=[self.keys.lease(version)], args=[token, self._lease_ms]):
            del self._leases[version]
            raise PublishInProgress(
                f"lost the publishing lease of version {version} (no write for "
                f"{self.config.publish_lease_s:.0f} s, and another publisher may have taken it)"
            )

    def release(self, version: str) -> None:
        """Let go of ``version`` (after a failed publish, so a re-run need not wait)."""
        token = self._leases.pop(version, None)
        if token is not None:
            self._release_script(keys=[self.keys.lease(version)], args=[token])

    # ---- a version's life ----------------------------------------------------------------------
    def begin_version(self, version: str, meta: dict[str, Any] | None = None) -> VersionInfo:
        """Start writing ``version``: refuses the active one and one another publisher is
        writing (:class:`PublishInProgress`); clears leftovers of a crash."""
        check_version(version)
        if version == self.active_version():
            raise ValueError(f"version {version} is active; publish under another version")
        self._claim(version)
        self._unlink_namespace(version)
        info = VersionInfo(version=version, created_at=time.time(), meta=dict(meta or {}))
        self._put_info(info)
        return info

    def written_counts(self, version: str) -> dict[str, int]:
        raw = self.client.hgetall(self.keys.meta(version))
        return {to_str(k): int(v) for k, v in raw.items()}

    def finish_version(
        self,
        version: str,
        expected: dict[str, int],
        sample_customers: Sequence[str] = (),
    ) -> VersionInfo:
        """Verify counters (and that sampled customers' keys exist), then mark complete and
        let go of the publishing lease. NoActiveVersion if ``version`` was never begun."""
        self._renew(version)
        info = self.version_info(version)
        if info is None:
            raise NoActiveVersion(f"version {version} was never begun")
        counts = self.written_counts(version)
        wrong = {k: (counts.get(k, 0), v) for k, v in expected.items() if counts.get(k, 0) != v}
        if wrong:
            raise RuntimeError(
                f"version {version} failed verification (written, expected): {wrong}"
            )
        if sample_customers:
            pipe = self.client.pipeline(transaction=False)
            for c in sample_customers:
                pipe.exists(self.keys.candidates(version, c))
            missing = [c for c, ok in zip(sample_customers, pipe.execute(), strict=True) if not ok]
            if missing:
                raise RuntimeError(f"version {version}: candidates missing for {missing[:5]}")
        if not self.client.exists(self.keys.items(version)):
            raise RuntimeError(f"version {version} has no item table")
        info.status, info.completed_at, info.counts = "complete", time.time(), counts
        self._put_info(info)
        self.release(version)
        return info

    def activate(self, version: str) -> str | None:
        """Atomically make a complete ``version`` active; returns the one it replaced.

        The replaced version becomes ``previous`` (kept for rollback); versions older than
        that get a TTL of ``config.retired_ttl_s``.
        """
        k = self.keys
        old = self._switch(keys=[k.active, k.previous, k.versions], args=[version])
        self.retire_old()
        return to_str(old) or None

    def rollback(self) -> str:
        """Atomically swap active and previous; returns the version now active."""
        k = self.keys
        return to_str(self._rollback(keys=[k.active, k.previous, k.versions]))

    def retire_old(self) -> list[str]:
        """Expire versions that are neither active nor previous (incl. crashed writes); a
        version another process is still publishing (its lease is held) is left alone."""
        keep = {self.active_version(), self.previous_version()}
        retired = []
        now = time.time()
        ttl = self.config.retired_ttl_s
        for version, info in self.versions().items():
            if version in keep or self.client.exists(self.keys.lease(version)):
                continue
            if info.status == "retired":
                if info.expires_at is not None and info.expires_at < now:
                    self.client.hdel(self.keys.versions, version)
                continue
            self._unlink_namespace(version, ttl=ttl)
            info.status, info.expires_at = "retired", now + ttl if ttl else now
            self._put_info(info)
            retired.append(version)
        return retired
