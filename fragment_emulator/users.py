"""Fragment users as the emulator knows them: who `assignee_email` may name.

Fragment has no user endpoints; users come from configuration. With a list of
emails the directory is closed (any other email is a 422); without one it is
open and every email is a user. Either way an email maps to the same uid on
every run, so tests can predict `assignee_uid`. Storing users is `store`'s job.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from fragment_emulator.models import JsonObject

# Fixed namespace: the same email gives the same user uid across runs and machines.
USER_NAMESPACE = uuid.UUID("5b0f3c52-2f3e-4b8e-9a57-0d3f6f1e2a10")


def normalise_email(email: str) -> str:
    """The form emails are compared in: trimmed, lowercase."""
    return email.strip().lower()


# Cached: a batch names the same few assignees over and over, and uuid5 (a
# SHA-1 and a UUID object) would otherwise be a tenth of a batch's CPU.
@functools.lru_cache(maxsize=4096)
def user_uid(email: str) -> str:
    """The uid of the user with this email (deterministic)."""
    return str(uuid.uuid5(USER_NAMESPACE, normalise_email(email)))


def user_record(email: str, created_at: str) -> JsonObject:
    """The User object (fragment-api.md §10) for `email`."""
    address = normalise_email(email)
    first, _, last = address.partition("@")[0].partition(".")
    return {
        "uid": user_uid(address),
        "archived": False,
        "role": "agent",
        "email": address,
        "first_name": first.capitalize() or None,
        "last_name": last.capitalize() or None,
        "skills": [],
        "legacy_data": {},
        "created_at": created_at,
        "updated_at": created_at,
        "is_registered": True,
    }


@dataclass(frozen=True, slots=True)
class UserDirectory:
    """Which emails name a user: `known` ones, or any when `known` is None."""

    known: frozenset[str] | None = None

    @classmethod
    def of(cls, emails: Iterable[str] | None) -> UserDirectory:
        """A closed directory of `emails`, or an open one when None."""
        if emails is None:
            return cls(None)
        return cls(frozenset(normalise_email(email) for email in emails))

    def knows(self, email: str) -> bool:
        """Whether `email` may be assigned."""
        return self.known is None or normalise_email(email) in self.known
