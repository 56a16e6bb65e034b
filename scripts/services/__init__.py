"""The real local services Vigil's tests, demo and benchmarks start: one module each."""
