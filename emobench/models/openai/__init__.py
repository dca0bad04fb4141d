"""The ``openai:`` family: OpenAI-compatible chat-completions servers (see :mod:`.adapter`)."""
