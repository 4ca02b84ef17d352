"""The one error type for bad user input: the CLI prints its message on one line and exits 2."""


class InspectorError(Exception):
    """A problem with something the user gave us (a path, an image, a checkpoint, an option).

    The message names the input and says what to do; it is shown without a traceback.
    """
