"""A fleet's keys, broker, per-board bundles and the central tools' MQTT client."""
