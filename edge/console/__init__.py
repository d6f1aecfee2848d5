"""The operator console: a web application on the trial database (alerts adjudicated live, the
audit), behind logins with roles. Off-device: the `console` extra; `edge run` never imports it."""
