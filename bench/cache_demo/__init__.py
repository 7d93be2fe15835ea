"""`make ci-cache-demo`: proves that Pants' REAPI remote cache serves Meridian's test
suite to a machine whose local caches are empty, as CI runners' are.

1. Start a throwaway BuildGrid (ActionCache + CAS + ByteStream) on 127.0.0.1.
2. Run 1: `pants test ::` in a fresh clone of HEAD with empty local caches, reading
   from and writing to the remote cache (it is empty, so all misses).
3. Run 2: the same in a second fresh clone with new empty local caches. Every cacheable
   process should now be a remote hit.
4. Print remote hits, lookups, hit ratio and both wall times; fail if fewer than
   MERIDIAN_CACHE_DEMO_MIN_HIT_PERCENT (default 90) percent of the lookups hit, if any
   test was not reported "cached remotely", or if anything came from a local cache.

Each run uses its own clone, local store, named caches and no pantsd, so nothing is
shared between the runs except the remote cache, and the demo never touches the
caller's checkout or its pantsd. It tests the committed HEAD, not uncommitted edits.
Runs outside Pants, on the standard library: `python3 -m bench.cache_demo`.
"""
