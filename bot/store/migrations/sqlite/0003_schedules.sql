-- Scheduled posts (/neko-config autopost), and audit scopes for them.
-- Times are ISO 8601 in UTC with microseconds (fixed width), so they compare correctly as text.

CREATE TABLE schedules (
    channel_id       INTEGER PRIMARY KEY,
    guild_id         INTEGER NOT NULL,
    interval_seconds INTEGER NOT NULL CHECK (interval_seconds > 0),
    -- comma-separated lower-case names; '' for any
    categories       TEXT NOT NULL DEFAULT '',
    image_count      INTEGER NOT NULL CHECK (image_count BETWEEN 1 AND 10),
    -- NULL: anything the channel allows
    rating           TEXT CHECK (rating IN ('sfw', 'questionable', 'nsfw')),
    created_by       INTEGER NOT NULL,
    created_at       TEXT NOT NULL,
    next_due         TEXT NOT NULL,
    -- when next_due was last set (one in the future: the clock was stepped back)
    set_at           TEXT NOT NULL,
    not_before       TEXT,
    last_post_at     TEXT,
    paused_reason    TEXT,
    lease_owner      TEXT,
    lease_until      TEXT
);

CREATE INDEX schedules_by_guild ON schedules (guild_id);
CREATE INDEX schedules_due ON schedules (next_due) WHERE paused_reason IS NULL;

-- SQLite can't change a CHECK constraint: the audit table is rebuilt with the new scopes
-- and a detail column, keeping every row and id.
CREATE TABLE settings_audit_new (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id          INTEGER NOT NULL,
    actor_id          INTEGER NOT NULL,
    scope             TEXT NOT NULL CHECK (scope IN ('default', 'channel', 'reset',
                          'autopost_set', 'autopost_remove', 'autopost_pause', 'autopost_resume')),
    channel_id        INTEGER,
    old_rating        TEXT CHECK (old_rating IN ('sfw', 'questionable', 'nsfw')),
    new_rating        TEXT CHECK (new_rating IN ('sfw', 'questionable', 'nsfw')),
    overrides_cleared INTEGER NOT NULL DEFAULT 0,
    -- ISO 8601, UTC
    changed_at        TEXT NOT NULL,
    detail            TEXT,
    CHECK ((scope IN ('default', 'reset')) = (channel_id IS NULL))
);

INSERT INTO settings_audit_new (id, guild_id, actor_id, scope, channel_id, old_rating,
    new_rating, overrides_cleared, changed_at)
SELECT id, guild_id, actor_id, scope, channel_id, old_rating, new_rating, overrides_cleared,
    changed_at FROM settings_audit;

-- Keep the id sequence where it was (rows of forgotten guilds may have been above the rest).
INSERT INTO sqlite_sequence (name, seq)
SELECT 'settings_audit_new', 0
WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'settings_audit_new');
UPDATE sqlite_sequence
SET seq = MAX(seq, COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'settings_audit'), 0))
WHERE name = 'settings_audit_new';

DROP TABLE settings_audit;
ALTER TABLE settings_audit_new RENAME TO settings_audit;
CREATE INDEX settings_audit_by_guild ON settings_audit (guild_id, id DESC);
