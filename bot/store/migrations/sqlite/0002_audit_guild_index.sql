-- recent_changes and forget_guild look up the audit trail by guild, newest first;
-- without this index both scan the whole table.

CREATE INDEX settings_audit_by_guild ON settings_audit (guild_id, id DESC);
