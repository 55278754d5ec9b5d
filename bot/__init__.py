"""The GitHub App: settings, webhook receiver, routing, permission gate, GitHub client, jobs."""
