"""Machines and monthly cost to keep up with a live load, from a measured throughput."""

from __future__ import annotations

import math

HOURS_PER_MONTH = 730


def project(clips_per_s: float, *, streams: int, clip_interval_s: float,
            price_per_hour: float) -> dict:
    """Machines (each as fast as the measured one) and monthly cost to keep up with
    ``streams`` live streams, each sending one clip every ``clip_interval_s``."""
    if clips_per_s <= 0:
        raise ValueError("a throughput of zero cannot keep up with any load")
    needed = streams / clip_interval_s
    machines = math.ceil(needed / clips_per_s)
    return {"clips_per_s_needed": needed, "machines": machines,
            "monthly_cost": machines * price_per_hour * HOURS_PER_MONTH}
