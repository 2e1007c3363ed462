"""The one exception type users see.

Anything raised as `HelloraError` is a problem with the user's input (a bad field, file, model or
combination). The CLI prints its message on one line and exits with status 2, without a traceback;
any other exception is a bug and keeps its traceback.
"""


class HelloraError(Exception):
    """A user-facing error: the message names the field, file or line at fault."""
