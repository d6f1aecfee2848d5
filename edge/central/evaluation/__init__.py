"""Error rates through the device's own code path: data, scores, metrics, calibration, watchlists, reports."""
