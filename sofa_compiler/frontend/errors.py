"""The exception the front end raises for problems with a model, and its warning category."""


class FrontendError(Exception):
    """A model the front end cannot import, with a message meant for the user.

    `sofa-import` prints `message` without a traceback and exits non-zero.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class FrontendWarning(UserWarning):
    """Something the user should know about an imported model, e.g. a part that runs on the host.

    The tools print these as one ``tool: warning: ...`` line each.
    """
