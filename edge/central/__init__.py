"""Tools run off the device: evaluation, calibration, trial reports. The device never imports this."""
