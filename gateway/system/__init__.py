"""The operating system as the agent meets it: systemd notify, journald, glibc, the clock."""
