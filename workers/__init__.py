"""arq worker: job functions and the pipeline checkout → sandbox → agent → verify → publish."""
