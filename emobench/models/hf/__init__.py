"""``hf:<model id or local folder>``: generative video VLMs through Hugging Face transformers."""
