"""A vLLM server as the engine: the HTTP client, the backend, and the local server process."""

# How long a server that is away is waited for (--server-patience). A vLLM start took 66-196 s
# here (the README's measurements): five minutes outlasts one with room for a slow disk, and is
# short enough that a server that is really gone is said soon. Here, not in patience.py, so that
# the command line's default does not import the HTTP client at start-up.
DEFAULT_PATIENCE_S = 300.0
