"""What every DET module shares."""


class DETError(ValueError):
    """A DET cannot be attached to this backbone with these settings."""
