"""A vLLM server as the engine: the HTTP client, the backend, and the local server process."""
