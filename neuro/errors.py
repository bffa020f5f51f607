"""The one exception type for user mistakes: its message is a single line naming the problem and the fix."""


class NeuroError(Exception):
    """A problem with the user's input (file, model, data, options), reported in one line.

    The CLI prints ``error: <message>`` and exits with status 2 instead of a traceback.
    """
