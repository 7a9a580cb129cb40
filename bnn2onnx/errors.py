"""The one exception type a user sees: what went wrong and what to do about it, in one line."""


class ConversionError(Exception):
    """A source model that cannot be converted (missing, corrupt, unsupported) or a result that fails checks."""


def first_line(error: BaseException) -> str:
    """An exception's message reduced to its first line (its type name when it has no message)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
