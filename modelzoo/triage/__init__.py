"""Min-view triage: synthetic histories, calibration, and the policy the daemon applies."""
