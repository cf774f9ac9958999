"""Prompt assembly: chat templates, tokenisation and context-window fitting."""
