"""The two-way sync with Microsoft 365. Built issue by issue: `adjust` (grid adjustment) so far."""
