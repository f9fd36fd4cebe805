"""The web app's login state, in memory: the sessions the login form opens and the rate
limit on failed logins.

Both live in the server process only (one of each per app): a restart ends every session
and forgets every failed attempt. Both are thread-safe (the login route runs in a worker
thread, the token check on the event loop) and bounded in memory. Their clock is
injectable (monotonic seconds), so tests need not sleep.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

#: a session ends after this long without a request (12 hours)
SESSION_IDLE_S = 12 * 3600.0
#: a session ends this long after its login, however much it is used (7 days)
SESSION_MAX_S = 7 * 24 * 3600.0
#: most sessions alive at once; past it, the one idle the longest ends
MAX_SESSIONS = 1000
#: failed logins one client may make within :data:`LOGIN_WINDOW_S`
MAX_LOGIN_FAILURES = 5
#: the sliding window of the login rate limit, in seconds
LOGIN_WINDOW_S = 60.0
#: most clients whose failed logins are remembered; past it, the oldest are forgotten
MAX_LOGIN_CLIENTS = 10_000


def _key(session_id: str) -> str:
    """What the store keeps for a session id: its SHA-256, never the id itself (a lookup's
    timing then says nothing about the ids held)."""
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


class SessionStore:
    """Login sessions: random ids (``secrets.token_urlsafe(32)``, the cookie's value) that
    the server keeps in memory.

    A session ends on :meth:`drop` (logout), after ``idle_s`` seconds without a
    :meth:`touch`, ``max_s`` seconds after it was created however much it is used, or when :meth:`create` would hold more than ``max_sessions`` (the one
    idle the longest goes first). Sessions are not saved anywhere: they all end when the
    server restarts, and the user logs in again.
    """

    def __init__(
        self,
        idle_s: float = SESSION_IDLE_S,
        max_sessions: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
        max_s: float = SESSION_MAX_S,
    ) -> None:
        if idle_s <= 0 or max_sessions < 1 or max_s <= 0:
            raise ValueError("idle_s and max_s must be > 0 and max_sessions >= 1")
        self.idle_s = idle_s
        self.max_s = max_s
        # key -> creation time
        self._born: dict[str, float] = {}
        self.max_sessions = max_sessions
        self._clock = clock
        self._lock = threading.Lock()
        # key -> last use; least recently used first
        self._last: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        """Sessions held (some may have expired since their last use)."""
        with self._lock:
            return len(self._last)

    def create(self) -> str:
        """Open a session; returns its id (for the cookie)."""
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            now = self._clock()
            self._expire(now)
            self._last[_key(session_id)] = now
            self._born[_key(session_id)] = now
            while len(self._last) > self.max_sessions:
                self._born.pop(self._last.popitem(last=False)[0], None)
        return session_id

    def touch(self, session_id: str) -> bool:
        """Whether ``session_id`` names a live session; if so, it counts as used now."""
        if not session_id:
            return False
        key = _key(session_id)
        with self._lock:
            now = self._clock()
            last = self._last.get(key)
            if last is None:
                return False
            if now - last > self.idle_s or now - self._born.get(key, now) > self.max_s:
                del self._last[key]
                self._born.pop(key, None)
                return False
            self._last[key] = now
            self._last.move_to_end(key)
            return True

    def drop(self, session_id: str) -> None:
        """End a session (nothing happens for an unknown id)."""
        with self._lock:
            self._last.pop(_key(session_id), None)
            self._born.pop(_key(session_id), None)

    def _expire(self, now: float) -> None:
        """Forget the sessions idle too long (call with the lock held)."""
        while self._last:
            key, last = next(iter(self._last.items()))
            if now - last <= self.idle_s:
                break
            del self._last[key]
            self._born.pop(key, None)


class LoginLimiter:
    """The rate limit on failed logins, per client address.

    A client may fail at most ``max_failures`` times within any ``window_s`` seconds; then
    its attempts are refused, right token or not, until its oldest failure in the window
    leaves it. Refused attempts are not counted (a user who keeps trying is not locked out
    for longer). A successful login does not forget the client's failures: they leave the
    window on their own (a right token in between, an API client's behind the same proxy or
    an attacker's own known one, reset the count: 4 wrong, 1 right, 24 wrong guesses in a
    few seconds and never a refusal). At most ``max_clients``
    clients are remembered (the one whose last failure is oldest is forgotten first).

    Clients are told apart by address only (the web app passes an IPv6 client's /64
    network, as one subscriber holds a whole one): behind a reverse proxy, every client
    shares the proxy's.
    """

    def __init__(
        self,
        max_failures: int = MAX_LOGIN_FAILURES,
        window_s: float = LOGIN_WINDOW_S,
        max_clients: int = MAX_LOGIN_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1 or window_s <= 0 or max_clients < 1:
            raise ValueError("max_failures and max_clients must be >= 1, window_s > 0")
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_clients = max_clients
        self._clock = clock
        self._lock = threading.Lock()
        # client -> times of its recent failures; the client whose last failure is oldest first
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        """Clients whose failures are remembered."""
        with self._lock:
            return len(self._failures)

    def attempt(self, client: str, succeeded: bool) -> int:
        """Record a login attempt by ``client`` whose token was right (``succeeded``) or
        wrong, in one step (two attempts at once cannot both slip under the limit).

        Returns 0 when the attempt is allowed (and recorded: a failure counts, a success
        leaves the failures as they are), else the whole seconds (>= 1) before the client
        may try again; a refused attempt changes nothing.
        """
        with self._lock:
            now = self._clock()
            self._forget_old(now)
            recent = self._failures.get(client)
            if recent is not None:
                while recent and now - recent[0] >= self.window_s:
                    recent.popleft()
                if len(recent) >= self.max_failures:
                    return max(1, math.ceil(recent[0] + self.window_s - now))
            if succeeded:
                return 0
            if recent is None:
                recent = self._failures[client] = deque(maxlen=self.max_failures)
            recent.append(now)
            self._failures.move_to_end(client)
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)
            return 0

    def _forget_old(self, now: float) -> None:
        """Forget the clients whose last failure left the window (lock held)."""
        while self._failures:
            client, recent = next(iter(self._failures.items()))
            if recent and now - recent[-1] < self.window_s:
                break
            del self._failures[client]
