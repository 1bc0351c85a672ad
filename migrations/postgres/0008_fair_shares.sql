-- Fair shares: a plugin fault the host caused (the wall clock stopped a call that the host kept waiting) is
-- recorded but not counted toward disabling the plugin.
ALTER TABLE plugin_faults ADD COLUMN counted BIGINT NOT NULL DEFAULT 1;
