"""Keep the API key out of everything the ``openai:`` family prints or records.

A server may echo the key it was sent: in an error body (``Incorrect API key provided:
Bearer sk-...``), as the model name it reports, inside an answer. Every piece of server
text is passed through :class:`Redactor` where it enters emobench (error messages, the
cache entry of each answer, what :meth:`~emobench.models.openai.adapter.OpenAIModel.describe`
reports), so the key reaches neither the console nor the manifest, the part files, the
predictions table or the answer cache.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

#: What a key is replaced by.
MASK = "sk-…REDACTED"
#: Keys shorter than this are not secrets worth mangling text for (``EMPTY``, ``x``).
MIN_SECRET = 6


class Redactor:
    """Replaces one secret (and its URL-quoted form) in strings and JSON-like values."""

    def __init__(self, secret: str | None) -> None:
        forms = {secret, quote(secret, safe="")} if secret and len(secret) >= MIN_SECRET else set()
        # the longest form first, so that one containing another is replaced whole
        self._forms = sorted((f for f in forms if f), key=len, reverse=True)

    def text(self, s: str) -> str:
        """``s`` with every occurrence of the secret replaced by :data:`MASK`."""
        for form in self._forms:
            if form in s:
                s = s.replace(form, MASK)
        return s

    def value(self, v: Any) -> Any:
        """A copy of a JSON-like value (dicts, lists, tuples, sets, strings) with the
        secret replaced in every string, keys included."""
        if not self._forms:
            return v
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, dict):
            return {self.value(k): self.value(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return type(v)(self.value(x) for x in v)
        if isinstance(v, set):
            return {self.value(x) for x in v}
        return v
