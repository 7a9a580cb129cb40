"""The one exception type a user sees: what went wrong and what to do about it, in one line."""


class ConversionError(Exception):
    """A source model that cannot be converted (missing, corrupt, unsupported) or a result that fails checks."""
