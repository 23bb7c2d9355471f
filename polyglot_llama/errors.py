"""The one exception type for user mistakes.

The CLI prints a `UserError` as a single line (no traceback) and exits 2; anything else is a bug: one line
and exit 1, with the traceback in the run's log file.
Messages name the file, line or key at fault and say what to do.
"""


class UserError(Exception):
    """A mistake in the user's input: config, data file, checkpoint or command line."""
