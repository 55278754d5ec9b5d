"""The error a tool raises when it was called wrongly; its message goes back to the model."""


class ToolError(Exception):
    """A tool could not do what was asked; the message says why and how to fix the call."""
