-- SQLite evaluates a CHECK of the form `x IN ('a', 'b', 'c')` (more than two
-- constants) by building a temporary b-tree of the list every time a
-- statement checks it. The event writer checked three per event (the
-- reminder's status, its promise's, the attempt's): about a fifth of the
-- writer thread's instructions (docs/PERFORMANCE.md §1i). The same
-- constraints written as `x = 'a' OR x = 'b' OR x = 'c'` compare in place.
--
-- Only the constraints' text changes: every row already satisfies them and no
-- row is rewritten, the case SQLite documents as a safe edit of the schema's
-- text (https://sqlite.org/lang_altertable.html, "Making other kinds of table
-- schema changes"). `tests/sqlite_schema.rs` holds that each constraint still
-- refuses what it refused, and that no update of any column builds a tree.
PRAGMA writable_schema = ON;

UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (status IN
                       (''pending'', ''in_progress'', ''processing'', ''completed'', ''failed'', ''cancelled''))',
    'CHECK (status = ''pending'' OR status = ''in_progress'' OR status = ''processing''
                       OR status = ''completed'' OR status = ''failed'' OR status = ''cancelled'')')
WHERE type = 'table' AND name = 'reminders';

UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (promise_status IN (''open'', ''kept'', ''broken''))',
    'CHECK (promise_status = ''open'' OR promise_status = ''kept'' OR promise_status = ''broken'')')
WHERE type = 'table' AND name = 'reminders';

UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (status IN (''in_progress'', ''processing'', ''completed'', ''failed''))',
    'CHECK (status = ''in_progress'' OR status = ''processing'' OR status = ''completed'' OR status = ''failed'')')
WHERE type = 'table' AND name = 'attempts';

UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (action IN (''cancel'', ''call_now'', ''suppress''))',
    'CHECK (action = ''cancel'' OR action = ''call_now'' OR action = ''suppress'')')
WHERE type = 'table' AND name = 'reminder_actions';

UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (status IN (''pending'', ''delivered'', ''failed''))',
    'CHECK (status = ''pending'' OR status = ''delivered'' OR status = ''failed'')')
WHERE type = 'table' AND name = 'notice_state';

-- Off, and this connection's schema read again from the edited text.
PRAGMA writable_schema = RESET;

-- Any other connection, in this process or another, reads it again too: a
-- change of schema (this pair) moves the schema cookie they all compare.
CREATE TABLE schema_reread (one INTEGER);
DROP TABLE schema_reread;
