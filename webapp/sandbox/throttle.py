"""Per app and mailbox throttling (to be written). Public API: `Throttle`."""


class Throttle:
    pass
