"""The single exception type of the data subpackage.

Every problem with user-supplied files or arguments (a corrupt PNG, a mask of
the wrong size, an unknown category, a failed download, ...) is reported as a
:class:`DataError`.  Messages always name the offending file or value and say
what was expected versus what was found, so a user can fix the input without
reading a traceback.
"""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data: a file, folder, argument or archive that cannot be used.

    Subclasses :class:`ValueError` so generic ``except ValueError`` handlers
    (e.g. in a CLI) still catch it.
    """
