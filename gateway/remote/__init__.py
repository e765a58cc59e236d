"""Signed remote config: envelopes (`signing`), what a push may change (`policy`), and the
channel that applies, rolls back and reports (`channel`). Loaded only when trusted keys are set."""
