"""Security tests (issue #9): hostile input at the edges, secrets, and what leaves a sandbox."""
