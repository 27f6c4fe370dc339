-- Where each daemon runs, beyond its hostname: the kernel's boot id and its pid namespace's
-- inode. A member of the same boot and pid namespace whose pid is gone is dead at once; any
-- other (another container of the same hostname, another machine) only by its lease.
ALTER TABLE daemons ADD COLUMN IF NOT EXISTS boot_id TEXT;
ALTER TABLE daemons ADD COLUMN IF NOT EXISTS pid_ns BIGINT;
