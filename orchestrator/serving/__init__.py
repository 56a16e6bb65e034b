"""The model side, over HTTP: the TorchServe client and its answers, media fetched under
the allow-list, and the VRT extractors."""

from orchestrator.serving.extractors import Extractors
from orchestrator.serving.media import MediaFetcher
from orchestrator.serving.torchserve import TorchServeClient, read_inference_key

__all__ = ["Extractors", "MediaFetcher", "TorchServeClient", "read_inference_key"]
