"""The error and warning types of the data path: bad rows are errors that name file, line and value."""

__all__ = ["DataError", "DataWarning"]


class DataError(ValueError):
    """Bad input data: the message names the file (or source), the row or line, and the value."""


class DataWarning(UserWarning):
    """Rows were skipped by a documented rule (e.g. empty text); the message counts and names them."""
