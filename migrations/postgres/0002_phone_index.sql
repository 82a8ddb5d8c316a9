-- The dashboard's search: reminders by phone number (external_id has its unique index).
CREATE INDEX reminders_phone ON reminders (phone_number);
