-- The live reminders (in_progress, processing) are found through
-- reminders_status_newest, which already leads with the status: there are at
-- most MAX_CONCURRENT_CALLS of them, so the timeout monitor reads them all and
-- filters by age. reminders_live was one more B-tree written by every dispatch
-- and every end of a call (a 4 KiB WAL frame per commit at concurrency 1) for
-- nothing that index did not already give (docs/PERFORMANCE.md §1g).
DROP INDEX reminders_live;
