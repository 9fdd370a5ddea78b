"""The application cache: the design's families, an in-process first tier, Redis (or memory) as the second.

Where the cache decides: `cache.Cache.get_or_fill` (read path) and `cache.Cache.invalidate` (after commit).
"""
