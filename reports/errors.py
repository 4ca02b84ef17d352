"""The error for bad report input (a language, a format, an output folder); its message is one line saying what to do."""


class ReportError(ValueError):
    """Raised by reports for input the caller can fix; the CLI prints it on one line and exits 2."""
