"""The domain records, each append-only: snapshots (what was frozen), algorithm versions (what
runs), runs (what was computed), publications (what was shown), and `verify`, which checks them
all against the hash-chained log. Each module reads and appends its own tables; a lookup of an
id the store does not hold raises NotFound."""
