"""Sandboxes: locked-down containers where untrusted repository code and agent commands run."""

from sandbox.protocol import ExecResult, Sandbox

__all__ = ["ExecResult", "Sandbox"]
