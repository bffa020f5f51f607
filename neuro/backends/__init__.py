"""Other simulators that run the same SNN, as cross-checks and export targets (``brian2``)."""
