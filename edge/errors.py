"""The base of errors an operator can act on (a wrong path, a bad value, an unknown id): `edge`
prints one as a single line and exits with status 1, whichever package raised it."""


class OperatorError(Exception):
    """Something is wrong with what was asked or given, not with the program; the message says what."""
