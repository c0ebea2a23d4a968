"""The system under test: the JSONL automaton store, its policies, and the scenario runner."""
