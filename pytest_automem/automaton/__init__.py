"""The system under test: the JSONL automaton store, its policies, the scenario runner.

And the spawner, which runs a scenario in child processes replaced under pressure.
"""
