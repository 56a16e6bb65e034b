"""Pipelines compose the stages: source -> batcher -> dispatcher -> sinks."""
