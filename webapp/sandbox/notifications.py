"""Change notification delivery (to be written). Public API: `Delivery(state)`."""


class Delivery:
    def __init__(self, state) -> None:
        self.state = state
