"""Field trials: the database the collector fills, operators' verdicts, the report."""
