"""Data only: the demo models, tokenizer and examples. Built into the wheel as ``livr_viz._assets`` (setup.py)."""
