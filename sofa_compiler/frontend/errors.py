"""The one exception the front end raises for problems with a model."""


class FrontendError(Exception):
    """A model the front end cannot import, with a message meant for the user.

    `sofa-import` prints `message` without a traceback and exits non-zero.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
