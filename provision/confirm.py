"""The one way a command asks the operator to confirm: end of input is "no"."""
from __future__ import annotations


def typed(question: str, expected: str) -> bool:
    """Whether the operator typed ``expected``; end of input (Ctrl-D, a closed or empty stdin) means no."""
    try:
        answer = input(question)
    except EOFError:
        print()  # the prompt's line ends, so the refusal that follows starts a line of its own
        return False
    return answer.strip() == expected
