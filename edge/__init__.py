"""Edge face-matching appliance: detect, embed and match faces on a small device; publish metadata only."""

__version__ = "0.1.0"
