"""Input files: read one file in any supported format (`formats`), validate it with
great-expectations (`validate`), and store it as one content-hashed batch (`batches`).
Validation runs before the store is touched, so a rejected file leaves it as it was."""
