"""Models to trace and package: audio classifier, building, tracing, archiving."""
