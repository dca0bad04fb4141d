"""What every chat backend (``hf:``, ``openai:``) shares: the request a clip becomes
(:mod:`.request`), the prompt and its records (:mod:`.prompt`), the content-keyed answer
cache (:mod:`.cache`) and MSCE enrichment (:mod:`.msce`). A chat backend imports from here;
nothing here imports a backend."""
