"""One-shot commands of the ``vigil`` CLI (``embed``, ``health``, ``rollout``), each
dispatched by name: nothing is imported here."""

__all__: list[str] = []
