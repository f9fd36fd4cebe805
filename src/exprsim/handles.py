"""Objects that hold an open handle (a database connection, an open video): pickling or
copying one would share or lose that handle, so they refuse both with one clear line
that says what to do instead."""

from __future__ import annotations

from typing import Any, ClassVar, NoReturn

from exprsim.errors import ExprsimError


class HoldsHandle:
    """Mixin: ``pickle``, ``copy.copy`` and ``copy.deepcopy`` raise ``refusal`` with the
    class's ``not_pickled`` / ``not_copied`` messages."""

    not_pickled: ClassVar[str]
    not_copied: ClassVar[str]
    refusal: ClassVar[type[ExprsimError]] = ExprsimError

    def __reduce__(self) -> NoReturn:
        raise self.refusal(self.not_pickled)

    def __copy__(self) -> NoReturn:
        raise self.refusal(self.not_copied)

    def __deepcopy__(self, memo: Any) -> NoReturn:
        raise self.refusal(self.not_copied)
