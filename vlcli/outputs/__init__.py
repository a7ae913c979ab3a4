"""Files vlcli writes: the ledger of records, subtitles, evidence, all written atomically."""
