"""Cache warming: the design's `warm_cache` job (popular recipes, trending searches, trending lists)."""
