"""The one error a bad input gives: every stage raises it, and the command line prints its message alone."""


class TraceError(Exception):
    """The file cannot be analyzed: the message is the one line the user sees."""
