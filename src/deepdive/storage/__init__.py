"""Storage: the run folder (locked, replaced safely), atomic writes, bounded reads, the schemas every file read
back is checked against, safetensors weights and the weights-only state.pt."""
