"""`python -m server.doctor`: `standin doctor` without the console script (the Ansible roles run it so)."""

import sys

from server.doctor import main

sys.exit(main())
