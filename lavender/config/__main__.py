"""`python -m lavender.config` prints docs/config.md."""
from .reference import markdown

print(markdown())
