"""Learning: images -> features -> scores; fitting, calibration, generation, metrics. Knows nothing of the runtime."""
