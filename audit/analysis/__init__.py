"""The analyses, pure functions over polars frames and numpy arrays: compare two runs
(`compare`, with the segments of who pays in `segments`) and explain one account's change
(`explain`). No store access, no clock, no randomness: the facade gathers their inputs."""
