"""Faults on demand (to be written). Public API: `Faults`."""


class Faults:
    pass
