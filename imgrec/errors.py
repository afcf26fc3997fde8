"""User-facing errors: one line that names the file or value and what is wrong."""


class ImgrecError(Exception):
    """Bad input or configuration. The entry points print it as one line and exit non-zero."""
