"""The workflow under test: data contract, settings, geometry, grouping, the network and its physics,
training and inference. Everything here is what a trained model's bytes depend on."""

__version__ = "0.1.0"
