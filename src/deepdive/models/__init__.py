"""Models: the registry (models/registry.py) that builds the families declared in config/specs.py, and the tv:/timm: adapter."""
