-- Scheduled posts (/neko-config autopost), and audit scopes for them.

CREATE TABLE schedules (
    channel_id       BIGINT PRIMARY KEY,
    guild_id         BIGINT NOT NULL,
    interval_seconds INTEGER NOT NULL CHECK (interval_seconds > 0),
    -- comma-separated lower-case names; '' for any
    categories       TEXT NOT NULL DEFAULT '',
    image_count      INTEGER NOT NULL CHECK (image_count BETWEEN 1 AND 10),
    -- NULL: anything the channel allows
    rating           TEXT CHECK (rating IN ('sfw', 'questionable', 'nsfw')),
    created_by       BIGINT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    next_due         TIMESTAMPTZ NOT NULL,
    -- when next_due was last set (one in the future: the clock was stepped back)
    set_at           TIMESTAMPTZ NOT NULL,
    not_before       TIMESTAMPTZ,
    last_post_at     TIMESTAMPTZ,
    paused_reason    TEXT,
    lease_owner      TEXT,
    lease_until      TIMESTAMPTZ
);

CREATE INDEX schedules_by_guild ON schedules (guild_id);
CREATE INDEX schedules_due ON schedules (next_due) WHERE paused_reason IS NULL;

ALTER TABLE settings_audit
    DROP CONSTRAINT settings_audit_scope_check,
    DROP CONSTRAINT settings_audit_check,
    ADD COLUMN detail TEXT,
    ADD CONSTRAINT settings_audit_scope_check CHECK (scope IN ('default', 'channel', 'reset',
        'autopost_set', 'autopost_remove', 'autopost_pause', 'autopost_resume')),
    ADD CONSTRAINT settings_audit_channel_check
        CHECK ((scope IN ('default', 'reset')) = (channel_id IS NULL));
