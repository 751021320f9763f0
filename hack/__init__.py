"""Developer tooling: builds the local test bed's tools and runs a local control plane."""
