"""The regression harness: timed runs of the real CLIs, metrics, the drift gate, runtime history."""
