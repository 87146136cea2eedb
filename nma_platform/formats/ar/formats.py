"""Arabic: Django groups no digits (NUMBER_GROUPING 0), so an amount read "13500000 دولار". The UN's Arabic groups
thousands as its French does, with a space, and a decimal comma (Django's): 13 500 000, 2,5. The space is a no-break
one, which Unicode's bidirectional algorithm keeps inside the number (a common number separator); a plain space
would split it, and a right-to-left line would show the groups in reverse order (000 500 13)."""

NUMBER_GROUPING = 3
THOUSAND_SEPARATOR = "\u00a0"
