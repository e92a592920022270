"""State persistence (DESIGN §5): ``codec`` (the format and its upgraders), stores
(``local``: one JSON file) and lockers (``lock``: an OS lock next to it)."""
