"""The physics-informed network: architecture, differentiable forward model, and the model bundle."""
