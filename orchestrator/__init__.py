"""The Vigil daemon: Kafka in, batches to TorchServe, results out. Never imports torch."""
