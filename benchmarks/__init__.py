"""Vigil's speed claims, measured side by side on this machine (``make bench``).

Parts: ``e2e`` (naive baseline vs Vigil), ``engines`` (eager vs TorchScript vs AOTInductor,
and fp32/bf16/int8), ``overhead`` (the serving path with a trivial model), ``load`` (latency
at 25/50/90% of capacity) and ``cost`` (machines and monthly cost from the throughputs).
A dev package: not installed, run from a checkout with ``python -m benchmarks``.
"""
