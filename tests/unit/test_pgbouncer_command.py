"""The PgBouncer container command, run for real in a shell: it must append the read-only login exactly as
PgBouncer's auth file expects (`"user" "password"`, the format the local PgBouncer in tests/data logs in with)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pat_constructs.pgbouncer import PGBOUNCER_COMMAND


def test_command_appends_the_readonly_login_then_execs_pgbouncer(tmp_path: Path) -> None:
    userlist = tmp_path / "userlist.txt"
    userlist.write_text('"pat_app" "app-password"\n')  # what the image's entrypoint wrote for DB_USER
    script = (
        PGBOUNCER_COMMAND[2]
        .replace("/etc/pgbouncer/userlist.txt", str(userlist))
        .replace("exec /usr/bin/pgbouncer /etc/pgbouncer/pgbouncer.ini", "exec echo started")
    )
    result = subprocess.run(
        [*PGBOUNCER_COMMAND[:2], script],
        env={"READONLY_USER": "pat_readonly", "READONLY_PASSWORD": "r3ad-0nly_pw=x", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "started\n"
    assert userlist.read_text() == '"pat_app" "app-password"\n"pat_readonly" "r3ad-0nly_pw=x"\n'
