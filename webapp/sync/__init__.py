"""The two-way sync with Microsoft 365. Built issue by issue: `adjust` (grid adjustment),
`models` (`Pair`), `pairs` (pair operations and the room check job), `rooms` (the provider's rooms for the
pairing form), `views` (the pairs page) so far."""
