"""The booking domain: models, rules, recurrence, operations, privacy, and the staff booking pages."""
