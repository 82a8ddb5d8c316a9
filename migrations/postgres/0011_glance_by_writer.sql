-- The event writer's batches (src/store/postgres/writer.rs) write the glance's
-- changes for the attempts and promises they change themselves: one statement
-- at the end of the batch, from what the batch read at its start and what the
-- rows hold at its end. They say so for their own transaction
-- (SET LOCAL duecall.glance_by_writer = 'on'), and these two row triggers then
-- stand aside: each cost a PL/pgSQL call and one or two INSERTs per event,
-- about a fifth of the webhook throughput (docs/PERFORMANCE.md §1e). Every
-- other write (claims, timeouts, payments, the tick, a lone event) keeps them.
DROP TRIGGER glance_attempt_changed ON attempts;
CREATE TRIGGER glance_attempt_changed AFTER UPDATE ON attempts
    FOR EACH ROW WHEN ((OLD.result IS DISTINCT FROM NEW.result OR OLD.dispatched_at IS DISTINCT FROM NEW.dispatched_at)
        AND current_setting('duecall.glance_by_writer', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION glance_attempt_delta();

DROP TRIGGER glance_promise_changed ON reminders;
CREATE TRIGGER glance_promise_changed AFTER UPDATE ON reminders
    FOR EACH ROW WHEN ((OLD.promise_status IS DISTINCT FROM NEW.promise_status
        OR OLD.promise_opened_at IS DISTINCT FROM NEW.promise_opened_at
        OR OLD.promise_amount_minor IS DISTINCT FROM NEW.promise_amount_minor)
        AND current_setting('duecall.glance_by_writer', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION glance_promise_delta();
