"""The model card: a pure function of an evaluation report."""
