"""The agent: a plan → edit → test loop that drives Qwen3-Coder through tools in a sandbox."""
