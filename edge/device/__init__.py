"""The device side: camera sources, the inference loop and its counters."""
