"""Running shoal's parts on one machine: `shoal up`, and the tests' fixtures."""
