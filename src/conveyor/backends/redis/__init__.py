"""The Redis engine: atomic Lua scripts over hashes and sorted sets, pub/sub wake-ups.

``RedisBackend("redis://host:6379/0?prefix=conveyor")``; needs the ``redis`` extra.
Durability, memory and the key layout are described in docs/backends-redis.md.
"""

from conveyor.backends.redis.backend import RedisBackend

__all__ = ["RedisBackend"]
