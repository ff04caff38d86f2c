"""Text analysis shared by the write and read paths (time expressions, blocks of a text)."""
