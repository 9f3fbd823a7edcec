"""The one exception family users see: each carries a sentence a person can act on."""


class GuardlineError(Exception):
    """A problem with the user's input or setup (not a bug): the CLI prints it on one line."""
