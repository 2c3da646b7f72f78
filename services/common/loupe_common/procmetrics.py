"""Process metrics that prometheus-client's own process collector does not export.

It exports the current resident set size only; the peak is what sizes a service's memory limit
(a trainer's: one project's images decoded at once, then the head's fit). Importing this module
registers the gauge in the default registry, which every service's `/metrics` serves.
"""
from __future__ import annotations

import resource

from prometheus_client import Gauge


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


PEAK_RSS = Gauge("loupe_process_peak_rss_bytes", "Peak resident set size of this process since it started")
PEAK_RSS.set_function(peak_rss_bytes)
