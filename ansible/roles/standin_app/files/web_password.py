"""Make PATH hold an argon2 hash of the password read from stdin, unless it already holds one of it.

Prints "unchanged" or "written". Uses standin's own `set_password` when it is importable, so the hash
is the one the dashboard checks; the file is written with mode 0600 either way.
"""

import os
import sys
import tempfile
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


def main() -> int:
    path = Path(sys.argv[1])
    password = sys.stdin.read().rstrip("\n")
    try:
        PasswordHasher().verify(path.read_text(encoding="utf-8").strip(), password)
    except (OSError, InvalidHashError, VerificationError):
        pass
    else:
        print("unchanged")
        return 0
    try:
        from server.web.auth import set_password
    except ImportError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(PasswordHasher().hash(password) + "\n")
        os.replace(tmp, path)
    else:
        set_password(path, password)
    print("written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
