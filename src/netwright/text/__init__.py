"""Language: tokenizers, text data sets, language models, translation."""
