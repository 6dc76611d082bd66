"""The shipped algorithm versions, one self-contained module each (see README, "Algorithm
contract"). They are package data: `audit.records.algorithms` registers a module's source text
into the store on first use, and what runs is always that stored text, never the installed file.
Nothing here imports anything of audit's."""
