"""The one exception type for bad input: the CLI turns it into exit code 2 and a message."""


class UserError(Exception):
    """Bad input or a missing/corrupt file; the message names the input and the fix."""
