"""`loupe`: a command-line client of Loupe's Custom Vision REST API (bin/loupe)."""
