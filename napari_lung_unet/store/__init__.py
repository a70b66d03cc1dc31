"""What the plugin keeps on disk between sessions: crash-safe atomic writes, the corrections
store (accepted masks with their records) and review worklists."""
