"""The one exception type for user mistakes.

The CLI prints a `UserError` as a single line (no traceback); everything else is a bug and keeps its traceback.
Messages name the file, line or key at fault and say what to do.
"""


class UserError(Exception):
    """A mistake in the user's input: config, data file, checkpoint or command line."""
