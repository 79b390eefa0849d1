"""User-facing errors: one clear line, no traceback for CLI users."""


class LIVRError(Exception):
    """A problem with the user's input or environment, explained in one line."""
