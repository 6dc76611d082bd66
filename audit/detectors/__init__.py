"""The shipped gaming detector versions, one self-contained module each (see README, "Gaming
audit"). Like the shipped algorithms they are package data: `audit.records.detectors` registers a
module's source text into the store on first use, and what runs is always that stored text, never
the installed file. Nothing here imports anything of audit's."""

DEFAULT = "rings@1"     # the version `audit gaming` runs unless told otherwise
