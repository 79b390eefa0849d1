"""One error hierarchy. :class:`LIVRError` is a problem with the user's input or environment, explained in one
line that says what to do; the CLI prints it without a traceback (exit 2) and the app shows it as a message. It
subclasses ``ValueError``, so code that validates with ``except ValueError`` keeps working; any other exception is
a bug and keeps its traceback."""


class LIVRError(ValueError):
    """A problem with the user's input or environment, explained in one line."""
