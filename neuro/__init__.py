"""neuro: convert trained ANNs into spiking networks and emulate them on neuromorphic chip models."""

from neuro.errors import NeuroError

__version__ = "0.1.0"
__all__ = ["NeuroError", "__version__"]
