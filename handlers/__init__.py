"""TorchServe custom handlers. The whole package ships inside each .mar archive."""
