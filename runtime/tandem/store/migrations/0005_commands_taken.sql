-- When the daemon executing a run took a command, before carrying it out: the asking
-- daemon withdraws only a command not taken yet, so one it gave up on is never done after.
ALTER TABLE commands ADD COLUMN IF NOT EXISTS taken_at DOUBLE PRECISION;
