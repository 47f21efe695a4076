"""Fault injection and Outlook-style throttling for every Graph request (to be written).

Public API: `install(bp)`.
"""


def install(bp) -> None:
    pass
